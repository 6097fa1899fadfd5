"""The context object awslambdaric gives handlers, built from sor's CONTEXT message."""

import sys
import time


def _record(name, fields):
    """A class with ``fields`` as slots and awslambdaric's ``Name([a=1,b=2])`` repr."""

    def __repr__(self):
        return f"{name}([" + ",".join(f"{f}={getattr(self, f, None)}" for f in fields) + "])"

    return type(name, (), {"__slots__": fields, "__repr__": __repr__})


CognitoIdentity = _record("CognitoIdentity", ("cognito_identity_id", "cognito_identity_pool_id"))
Client = _record(
    "Client",
    ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"),
)
ClientContext = _record("ClientContext", ("custom", "env", "client"))
_CONTEXT_REPR = [
    "aws_request_id",
    "log_group_name",
    "log_stream_name",
    "function_name",
    "memory_limit_in_mb",
    "function_version",
    "invoked_function_arn",
    "client_context",
    "identity",
    "tenant_id",
]


def _slots_from(cls, data):
    """An instance of ``cls`` whose slots are read from ``data`` (None when data is None)."""
    if data is None:
        return None
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, data.get(name))
    return obj


class LambdaContext:
    """The context object awslambdaric gives handlers, built from sor's CONTEXT message."""

    def __init__(self, ctx):
        self.aws_request_id = ctx.get("aws_request_id")
        self.log_group_name = ctx.get("log_group_name")
        self.log_stream_name = ctx.get("log_stream_name")
        self.function_name = ctx.get("function_name")
        self.memory_limit_in_mb = ctx.get("memory_limit_in_mb")
        self.function_version = ctx.get("function_version")
        self.invoked_function_arn = ctx.get("invoked_function_arn")
        self.tenant_id = ctx.get("tenant_id")
        client_context = ctx.get("client_context")
        self._w3c = {}
        self.client_context = None
        if client_context is not None:  # most invocations have none: nothing of this runs
            w3c = client_context.pop("w3c", None) if isinstance(client_context, dict) else None
            if isinstance(w3c, dict):
                self._w3c = {
                    k: w3c[k]
                    for k in ("traceparent", "tracestate", "baggage")
                    if isinstance(w3c.get(k), str)
                }
            self.client_context = _slots_from(ClientContext, client_context)
            self.client_context.client = _slots_from(Client, self.client_context.client)
        identity = ctx.get("identity") or {}
        self.identity = CognitoIdentity()
        self.identity.cognito_identity_id = identity.get("cognitoIdentityId")
        self.identity.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")
        self._deadline_ms = int(ctx.get("deadline_ms") or 0)

    def get_remaining_time_in_millis(self):
        """Milliseconds left before sor stops the handler (Lambda's deadline less the grace)."""
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def w3c(self):
        return dict(self._w3c)

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return "LambdaContext([" + ",".join(f"{n}={getattr(self, n)}" for n in _CONTEXT_REPR) + "])"
