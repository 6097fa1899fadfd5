"""The function's log streams, and Lambda's log formats for the `logging` module.

A log record leaves as ONE line of stdout (runtimes/PROTOCOL.md, "Log records"): the line breaks
inside a record (a traceback, a multi-line message) are written as ``\\r``, as Lambda's Node
runtime and awslambdaric's own error line do, so sor (or Lambda reading stdout) keeps it one
event. sor turns each line into one telemetry frame; the adapter never sees that descriptor.
"""

import json
import sys
import time

_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Lambda's Python runtimes up to 3.11 (and every provided.* runtime) escape non-ASCII in JSON.
UNESCAPED_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in range(12, 20))
# awslambdaric's reserved LogRecord attributes: every other one is an `extra` field in JSON.
_RESERVED_FIELDS = frozenset(
    {
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "aws_request_id",
        "tenant_id",
        "_frame_type",
    }
)


class Unbuffered:
    """Flushes every write, as awslambdaric does, so logs survive a killed process."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def write(self, text):
        n = self._stream.write(text)
        self._stream.flush()
        return n

    def writelines(self, lines):
        self._stream.writelines(lines)
        self._stream.flush()


def one_line(text):
    """A record as one log line: inner line breaks as ``\\r``, one ``\\n`` at the end."""
    if text.endswith("\n"):
        text = text[:-1]
    return text.replace("\r\n", "\r").replace("\n", "\r") + "\n"


def json_format(env):
    """True under AWS_LAMBDA_LOG_FORMAT=JSON (any case), as awslambdaric reads it."""
    return env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"


def log_level(env):
    """awslambdaric's reading of AWS_LAMBDA_LOG_LEVEL: exactly ``TRACE`` is DEBUG, the rest
    upper-cased ("" when unset); only a name `logging` knows is applied."""
    value = env.get("AWS_LAMBDA_LOG_LEVEL")
    return {None: "", "TRACE": "DEBUG"}.get(value, value).upper()


class LambdaLogging:
    """Lambda's formats for the `logging` module, as awslambdaric installs them.

    Installed only once user code has imported `logging` (sor itself never pays for it), and not
    when that code already gave the root logger handlers of its own.
    """

    request_id = ""
    tenant_id = None
    done = False

    @classmethod
    def install(cls, env):
        logging = sys.modules.get("logging")
        if cls.done or logging is None:
            return
        cls.done = True
        root = logging.getLogger()
        if root.handlers:
            return

        class Handler(logging.Handler):
            def emit(self, record):
                try:
                    sys.stdout.write(one_line(self.format(record)))
                except Exception:
                    self.handleError(record)

        class Filter(logging.Filter):
            def filter(self, record):
                record.aws_request_id = cls.request_id or ""
                record.tenant_id = cls.tenant_id
                return True

        logging.Formatter.converter = time.gmtime
        handler = Handler()
        if json_format(env):
            handler.setFormatter(_json_formatter(logging))
        else:
            text = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
            handler.setFormatter(logging.Formatter(text, "%Y-%m-%dT%H:%M:%S"))
        level = log_level(env)
        if level in logging._nameToLevel:  # what awslambdaric checks: else the root's WARNING
            root.setLevel(level)
        handler.addFilter(Filter())
        root.addHandler(handler)


def _json_formatter(logging):
    """awslambdaric 4.2.2's JsonFormatter: the same keys, order, values and encoding."""
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    class JsonFormatter(logging.Formatter):
        def format(self, record):
            record.levelno = min(50, max(0, record.levelno)) // 10 * 10
            record.levelname = logging.getLevelName(record.levelno)
            exc = record.exc_info
            doc = {
                "timestamp": self.formatTime(record, _DATETIME_FORMAT),
                "level": record.levelname,
                "message": (
                    record.msg
                    if isinstance(record.msg, dict) and not record.args
                    else record.getMessage()
                ),
                "logger": record.name,
                "stackTrace": _format_tb(exc[2]) if exc else None,
                "errorType": exc[0].__name__ if exc else None,
                "errorMessage": str(exc[1]) if exc else None,
                "requestId": getattr(record, "aws_request_id", None),
                "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc else None,
            }
            if getattr(record, "tenant_id", None) is not None:
                doc["tenantId"] = record.tenant_id
            doc.update(
                (k, v)
                for k, v in record.__dict__.items()
                if k not in _RESERVED_FIELDS and k not in doc
            )
            return encode({k: v for k, v in doc.items() if v is not None}) + "\n"

    return JsonFormatter()


def _format_tb(tb):
    import traceback  # only a record with exc_info pays for it

    return traceback.format_tb(tb)


def log_error(error, request_id="", env=None):
    """Print an unhandled error in the function's logs, as Lambda's Python runtime does.

    Text: ``[ERROR] Type: message`` and the traceback, indented with no-break spaces, on one
    line (``\\r`` between its lines). JSON: timestamp, level, then the error document.
    """
    if env is not None and json_format(env):
        doc = {
            "timestamp": time.strftime(_DATETIME_FORMAT, time.gmtime()),
            "level": "ERROR",
            "errorMessage": error.get("errorMessage") or "",
            "errorType": error.get("errorType") or "",
            "requestId": request_id or "",
            "stackTrace": error.get("stackTrace") or [],
        }
        # As awslambdaric's to_json: non-ASCII escaped but on the python3.12+ managed runtimes.
        ascii_only = env.get("AWS_EXECUTION_ENV") not in UNESCAPED_ENVS
        sys.stdout.write(json.dumps(doc, ensure_ascii=ascii_only) + "\n")
        return
    head = "[ERROR]"
    if error.get("errorType"):
        head += " " + error["errorType"]
    if error.get("errorMessage"):
        head += (":" if error.get("errorType") else "") + " " + error["errorMessage"]
    lines = [head]
    if error.get("stackTrace") is not None:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            for line in element.splitlines() or [""]:
                stripped = line.lstrip(" ")
                lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write(one_line("\n".join(lines)))
