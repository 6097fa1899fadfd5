"""The function's log streams, and Lambda's log format for the `logging` module."""

import json
import sys
import time


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


class LambdaLogging:
    """Lambda's log line format for the `logging` module, as awslambdaric installs it.

    Installed only once user code has imported `logging` (sor itself never pays for it), and not
    when that code already gave the root logger handlers of its own.
    """

    request_id = ""
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
                record.aws_request_id = cls.request_id
                try:
                    sys.stdout.write(self.format(record))
                except Exception:
                    self.handleError(record)

        handler = Handler()
        if env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON":
            handler.setFormatter(_json_formatter(logging))
        else:
            text = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
            handler.setFormatter(logging.Formatter(text, "%Y-%m-%dT%H:%M:%S"))
        logging.Formatter.converter = time.gmtime
        root.addHandler(handler)
        level = {"TRACE": "DEBUG"}.get(env.get("AWS_LAMBDA_LOG_LEVEL", "").upper(), "")
        level = level or env.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
        if level in ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"):
            root.setLevel(level)


def _json_formatter(logging):
    class JsonFormatter(logging.Formatter):
        def format(self, record):
            doc = {
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
                "level": record.levelname,
                "message": record.getMessage(),
                "logger": record.name,
                "requestId": record.aws_request_id or None,
            }
            if record.exc_info:
                import traceback

                doc["errorType"] = record.exc_info[0].__name__
                doc["errorMessage"] = str(record.exc_info[1])
                doc["stackTrace"] = traceback.format_tb(record.exc_info[2])
            doc = {k: v for k, v in doc.items() if v is not None}
            return json.dumps(doc, ensure_ascii=False, default=str) + "\n"

    return JsonFormatter()


def log_error(error):
    """Print the error in the function's logs, in the format of Lambda's Python runtime."""
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
    sys.stdout.write("\r".join(lines) + "\n")
