def handler(event, context):
    return {"ok": True, "n": event.get("n"), "request": context.aws_request_id}
