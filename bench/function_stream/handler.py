"""A streaming handler for the bench: ``event["mib"]`` MiB, in 64 KiB chunks, as it makes them."""

CHUNK = b"x" * 65536


def handler(event, context):
    for _ in range(event["mib"] * 16):
        yield CHUNK
