"""The baseline runtime loop: the least a Lambda runtime can do, in plain http.client.

It imports the handler in-process and loops next -> handler -> response. No supervision, no
middlewares, no error handling beyond the minimum: the floor that sor and awslambdaric are
measured against.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import types


def main() -> None:
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].partition(":")
    module_name, _, func_name = os.environ["_HANDLER"].rpartition(".")
    sys.path.insert(0, os.getcwd())
    handler = getattr(importlib.import_module(module_name), func_name)
    conn = http.client.HTTPConnection(host, int(port))
    base = "/2018-06-01/runtime/invocation"
    while True:
        conn.request("GET", f"{base}/next")
        reply = conn.getresponse()
        event = json.loads(reply.read())
        request_id = reply.getheader("Lambda-Runtime-Aws-Request-Id")
        context = types.SimpleNamespace(aws_request_id=request_id)
        body = json.dumps(handler(event, context)).encode()
        conn.request("POST", f"{base}/{request_id}/response", body=body)
        conn.getresponse().read()


if __name__ == "__main__":
    main()
