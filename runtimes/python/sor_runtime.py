"""sor's Python language runtime: hosts one handler and serves sor's protocol (version 1).

Requests arrive as JSON lines on fd $SOR_IN_FD, answers leave as JSON lines on fd $SOR_OUT_FD
(see runtimes/PROTOCOL.md). stdout and stderr stay the function's logs. The handler sees the same
context object and error documents as under awslambdaric, Lambda's own Python runtime client.
Only light standard-library modules are imported at start-up (json, os, sys, time; traceback when
an error needs it): cold starts pay for this file. Under SOR_LOAD=deferred the handler is loaded
only once sor sends `{"type":"load"}` (runtimes/PROTOCOL.md, "deferred load").
"""

# No `from __future__ import annotations`: this file has no annotations, and the import costs
# ~0.6 ms at every cold start, before `ready`.
import importlib
import json
import os
import sys
import time

_HERE = os.path.abspath(__file__)


class Fault(Exception):
    """A failure Lambda names itself (Runtime.*), with awslambdaric's message and trace."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


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
        w3c = client_context.pop("w3c", None) if isinstance(client_context, dict) else None
        self._w3c = {
            k: w3c[k]
            for k in ("traceparent", "tracestate", "baggage")
            if isinstance(w3c, dict) and isinstance(w3c.get(k), str)
        }
        self.client_context = _slots_from(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _slots_from(Client, self.client_context.client)
        identity = ctx.get("identity") or {}
        self.identity = _slots_from(CognitoIdentity, {})
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


class _Unbuffered:
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


class _Logging:
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


def load_handler(spec):
    """The handler function named ``module.function`` or ``dir/module.function``."""
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {e}") from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise Fault(
                "Runtime.BuiltInModuleConflict",
                f"Cannot use built-in module {modname} as a handler module",
            )
        # importlib, as awslambdaric: its frames are part of the stack trace users compare.
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        ) from None


def error_of(exc):
    """The ERROR object of an exception, with this file's (and asyncio's) frames trimmed."""
    if isinstance(exc, Fault):
        return {
            "errorMessage": exc.message,
            "errorType": exc.error_type,
            "stackTrace": exc.trace or [],
        }
    import traceback  # ~2 ms of imports: only a failed invocation pays for them

    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    while start < len(frames) and _is_ours(frames[start].filename):
        start += 1
    if start < len(frames):
        frames = frames[start:]
    tuples = [(f.filename, f.lineno, f.name, f.line) for f in frames]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_list(tuples),
    }


def _is_ours(filename):
    return filename == _HERE or f"{os.sep}asyncio{os.sep}" in filename


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


def start_debugging(debug, deadline_ms):
    """Connect out to the debugger listening at debug["host"]:debug["port"] and wait for it.

    Runs in the process forked for this one invocation (see Server.debug_invoke), on the thread
    that then runs the handler. debugpy is imported only now; without it, or when the debugger
    does not answer, the handler runs anyway: at most half the time the invocation has left is
    spent waiting, so a debugger that never attaches delays the handler, never prevents it.
    """
    try:
        target = (str(debug["host"]), int(debug["port"]))
    except (KeyError, TypeError, ValueError):
        print(f"sor: ignored a malformed debug target {debug!r}", file=sys.stderr)
        return
    where = f"{target[0]}:{target[1]}"
    try:
        import debugpy
    except ImportError:
        print(
            f"sor: debugpy is not installed in the function (pip install debugpy -t .): the "
            f"debugger at {where} is not connected; running the handler without it",
            file=sys.stderr,
        )
        return
    import threading

    left = (deadline_ms / 1000.0 - time.time()) if deadline_ms else 60.0
    until = time.monotonic() + max(0.0, left / 2)  # for connecting and attaching together
    done, failure = threading.Event(), []

    def connect():
        try:
            debugpy.connect(target)
        except Exception as exc:  # reported below, never fatal
            failure.append(exc)
        finally:
            done.set()

    # In a thread: debugpy.connect has no timeout of its own.
    threading.Thread(target=connect, name="sor-debugpy-connect", daemon=True).start()
    if not done.wait(max(0.0, until - time.monotonic())):
        print(
            f"sor: the debugger at {where} did not answer in time; running without it",
            file=sys.stderr,
        )
        return
    if failure:
        print(
            f"sor: the debugger at {where} is unreachable ({failure[0]}); running without it",
            file=sys.stderr,
        )
        return
    # debugpy.connect traced the thread that called it and threads started later, not this one
    # (the handler's): without this, breakpoints in the handler are never hit.
    debugpy.debug_this_thread()
    if debugpy.is_client_connected():
        return
    # As in Node: breakpoints set on attach are hit. The wait is cancelled at the budget's end.
    timer = threading.Timer(
        max(0.0, until - time.monotonic()), lambda: debugpy.wait_for_client.cancel()
    )
    timer.daemon = True
    timer.start()
    try:
        debugpy.wait_for_client()
    finally:
        timer.cancel()


class Server:
    """Reads requests, calls the handler, writes answers."""

    def __init__(self, in_fd, out_fd, env):
        # Move the protocol off the well-known descriptors: a handler writing to fd 4 (or a
        # child it starts) cannot reach sor's answer pipe.
        self._in = os.fdopen(os.dup(in_fd), "rb")
        self._out = os.dup(out_fd)
        os.close(in_fd)
        os.close(out_fd)
        self.env = env
        self.cloudevent = env.get("SOR_SIGNATURE") == "cloudevent"
        self.handler = None
        self._loop = None

    def send(self, message):
        self.write(_encode(message))

    def write(self, line):
        view = memoryview(line)
        while view:
            view = view[os.write(self._out, view) :]

    def serve(self, spec):
        if self.env.get("SOR_LOAD") == "deferred":
            code = self._wait_for_load()
            if code is not None:
                return code
        os.environ.pop("SOR_LOAD", None)  # sor's business, not the handler's
        try:
            self.handler = load_handler(spec)
        except Exception as exc:
            error = error_of(exc)
            log_error(error)
            self.send({"type": "init_error", "error": error})
            return 1
        _Logging.install(self.env)
        self.send({"type": "ready"})
        for line in self._in:
            request = json.loads(line)
            if request.get("type") == "invoke":
                self.write(
                    self.debug_invoke(request) if request.get("debug") else self.invoke(request)
                )
        return 0

    def _wait_for_load(self):
        """Under SOR_LOAD=deferred: None once `load` arrived, else the exit code.

        sor starts the runtime before it has read sor.yml and confirms it with `load`; until
        then no user code runs. End of file means sor chose another runtime: exit quietly.
        """
        line = self._in.readline()
        if not line:
            return 0
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict) and message.get("type") == "load":
            return None
        print(
            'sor: protocol error: under SOR_LOAD=deferred the first message must be {"type":'
            f'"load"}}, not {line[:80]!r}',
            file=sys.stderr,
        )
        return 2

    def debug_invoke(self, request):
        """Answer an invoke that carries a debug target from a forked copy of this process.

        The copy connects the debugger, runs the handler, answers on fd 4 and exits, so the
        debug session ends with its invocation: this process never loads debugpy and later
        invocations run without a debugger (and without what the debugged one changed in
        memory). Returns the line this process still has to write (empty once the copy answered).
        """
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the copy: whatever happens, it never returns into the serve loop
            code = 1
            try:
                os.close(done_r)
                self._loop = None  # a loop of its own: the parent's epoll stays the parent's
                self.write(self.invoke(request))
                os.write(done_w, b"1")
                code = 0
            finally:
                os._exit(code)
        os.close(done_w)
        _, status = os.waitpid(pid, 0)
        answered = os.read(done_r, 1)
        os.close(done_r)
        if answered:
            return b""
        if os.WIFSIGNALED(status):
            how = f"signal {os.WTERMSIG(status)}"
        else:
            how = f"status {os.WEXITSTATUS(status)}"
        error = {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"the debugged invocation's process exited with {how} before answering",
            "stackTrace": [],
        }
        log_error(error)
        return _encode({"type": "error", "id": request.get("id"), "error": error})

    def invoke(self, request):
        request_id = request.get("id")
        ctx = request.get("context") or {}
        _Logging.request_id = request_id or ""
        _Logging.install(self.env)
        trace_id = ctx.get("trace_id")
        if trace_id != os.environ.get("_X_AMZN_TRACE_ID"):  # putenv only when it changes
            if trace_id:
                os.environ["_X_AMZN_TRACE_ID"] = trace_id
            else:
                os.environ.pop("_X_AMZN_TRACE_ID", None)
        debug = request.get("debug")
        if debug:
            try:
                start_debugging(debug, ctx.get("deadline_ms"))
            except Exception as exc:  # debugging is best effort: the handler runs
                print(f"sor: remote debugging failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        try:
            event = request.get("event")
            if self.cloudevent:
                event = _to_cloudevent(event)
            result = self.handler(event, LambdaContext(ctx))
            if hasattr(result, "__await__"):
                result = self._await(result)
            if self.cloudevent and hasattr(result, "get_specversion"):
                result = _from_cloudevent(result)
            try:
                return _encode({"type": "result", "id": request_id, "result": result})
            except (TypeError, ValueError, OverflowError, RecursionError) as e:
                raise Fault("Runtime.MarshalError", f"Unable to marshal response: {e}") from None
        except Exception as exc:
            error = error_of(exc)
            log_error(error)
            return _encode({"type": "error", "id": request_id, "error": error})

    def _await(self, awaitable):
        import asyncio  # only async handlers pay for asyncio

        if self._loop is None:
            # One loop for the life of the process: clients and tasks survive between calls.
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)


def _encode(message):
    """One protocol line: UTF-8 JSON (lone surrogates pass, as json.loads accepts them)."""
    data = json.dumps(message, ensure_ascii=False, default=_json_default)
    return data.encode("utf-8", "surrogatepass") + b"\n"


def _json_default(obj):
    # awslambdaric encodes Decimal as its exact digits; the stdlib encoder can only get close.
    if type(obj).__name__ == "Decimal":
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _to_cloudevent(structured):
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    return JSONFormat().read(CloudEvent, json.dumps(structured).encode())


def _from_cloudevent(event):
    from cloudevents.core.formats.json import JSONFormat

    return json.loads(JSONFormat().write(event))


def main():
    env = os.environ
    task_root = os.getcwd()
    # The handler's folder comes first; this adapter's own folder must not shadow user modules.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(_HERE)]
    sys.path.insert(0, task_root)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = _Unbuffered(sys.stdout)
    sys.stderr = _Unbuffered(sys.stderr)
    server = Server(int(env.get("SOR_IN_FD", "3")), int(env.get("SOR_OUT_FD", "4")), env)
    return server.serve(env.get("SOR_HANDLER") or env.get("_HANDLER") or "")


if __name__ == "__main__":
    sys.exit(main())
