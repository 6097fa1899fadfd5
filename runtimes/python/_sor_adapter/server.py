"""The protocol loop: requests on fd $SOR_IN_FD, the handler, answers on fd $SOR_OUT_FD."""

import json
import os
import sys

from _sor_adapter.context import LambdaContext
from _sor_adapter.errors import error_of, failure_of, xray_cause
from _sor_adapter.loading import Fault, load_handler
from _sor_adapter.logs import UNESCAPED_ENVS, LambdaLogging, Unbuffered, log_error

PROTOCOL = "1"


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
        self.ascii_only = env.get("AWS_EXECUTION_ENV") not in UNESCAPED_ENVS
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
            log_error(error, "", self.env)
            self.send({"type": "init_error", "error": error})
            return 1
        LambdaLogging.install(self.env)
        self.send({"type": "ready", "seal": True})  # it echoes seals (PROTOCOL.md, "The seal")
        for line in self._in:
            try:
                # Decoded as json.loads decodes sor's lines (UTF-8, lone surrogates passed),
                # without its guess of the encoding: sor writes UTF-8 only.
                request = json.loads(line.decode("utf-8", "surrogatepass"))
            except (ValueError, RecursionError) as exc:
                request = exc
            if isinstance(request, dict) and request.get("type") == "invoke":
                self.write(
                    self.debug_invoke(request) if request.get("debug") else self.invoke(request)
                )
            elif not self.unreadable(line, request):
                return 2
        return 0

    def unreadable(self, line, parsed):
        """Answer a message that cannot be served at once (PROTOCOL.md, "Unreadable messages").

        With an id to answer (sor writes it first), the invocation gets a named error; without
        one the adapter reports the protocol error and ends (False): never a silent wait.
        """
        import re  # only an unreadable request pays for the regular expressions

        match = re.match(_ID, line)
        if match is None:
            what = "not JSON" if isinstance(parsed, Exception) else "not an invoke message"
            print(f"sor: protocol error: a request that is {what}: {line[:80]!r}", file=sys.stderr)
            return False
        if isinstance(parsed, Exception):  # the event itself: as Lambda names it
            kind, message = "Runtime.UnmarshalError", f"Unable to unmarshal input: {parsed}"
        else:
            kind, message = "Runtime.InvalidRequest", "the request is not an invoke message"
        error = {"errorMessage": message, "errorType": kind, "stackTrace": []}
        request_id = match.group(1).decode("utf-8", "replace")
        log_error(error, request_id, self.env)
        seal = re.search(_SEAL, line)
        answer = _answer("error", request_id, seal and seal.group(1).decode(), error)
        answer["xray"] = xray_cause("LambdaValidationError", message, [])
        self.send(answer)
        return True

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
        log_error(error, request.get("id"), self.env)
        return _encode(_answer("error", request.get("id"), request.get("seal"), error))

    def invoke(self, request):
        request_id = request.get("id")
        seal = request.pop("seal", None)  # never within the handler's reach (PROTOCOL.md)
        ctx = request.get("context") or {}
        LambdaLogging.request_id = request_id or ""
        LambdaLogging.tenant_id = ctx.get("tenant_id")
        LambdaLogging.install(self.env)
        trace_id = ctx.get("trace_id")
        if trace_id != os.environ.get("_X_AMZN_TRACE_ID"):  # putenv only when it changes
            if trace_id:
                os.environ["_X_AMZN_TRACE_ID"] = trace_id
            else:
                os.environ.pop("_X_AMZN_TRACE_ID", None)
        debug = request.get("debug")
        if debug:
            try:
                from _sor_adapter.debugging import start_debugging

                start_debugging(debug, ctx.get("deadline_ms"))
            except Exception as exc:  # debugging is best effort: the handler runs
                print(f"sor: remote debugging failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        try:
            event = request.get("event")
            if self.cloudevent:
                from _sor_adapter.events import to_cloudevent

                event = to_cloudevent(event)
            result = self.handler(event, LambdaContext(ctx))
            if hasattr(result, "__await__"):
                result = self.run_async(result)
            if _streamed(result):
                from _sor_adapter.streaming import Stream  # only streaming handlers pay for it

                return Stream(self.write, self.run_async, request_id, seal, self.env).answer(result)
            if self.cloudevent and hasattr(result, "get_specversion"):
                from _sor_adapter.events import from_cloudevent

                result = from_cloudevent(result)
            try:
                return _result_line(request_id, seal, result, self.ascii_only)
            except (TypeError, ValueError, OverflowError, RecursionError) as e:
                raise Fault("Runtime.MarshalError", f"Unable to marshal response: {e}") from None
        except Exception as exc:
            error, xray = failure_of(exc)
            log_error(error, request_id, self.env)
            answer = _answer("error", request_id, seal, error)
            answer["xray"] = xray
            return _encode(answer)

    def run_async(self, awaitable):
        import asyncio  # only async handlers pay for asyncio

        if self._loop is None:
            # One loop for the life of the process: clients and tasks survive between calls.
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)


# The id of an invoke, read from its first bytes when the rest cannot be parsed.
_ID = rb'\{"type":"invoke","id":"([^"\\]{1,200})"'
# ... and its seal, from its last bytes (sor writes the seal last).
_SEAL = rb'"seal"\s*:\s*"([0-9a-f]{1,64})"\s*\}\s*$'


def _streamed(result):
    """True for an answer to stream: an iterator, an async iterator, or a dict whose body is one
    (PROTOCOL.md, "streaming"; str, bytes, dict and list have no ``__next__``)."""
    if isinstance(result, dict):
        result = result.get("body")
    return hasattr(result, "__next__") or hasattr(result, "__anext__")


def _answer(kind, request_id, seal, value):
    """A result or error message; it carries the invoke's seal when there was one."""
    message = {"type": kind, "id": request_id}
    if seal is not None:
        message["seal"] = seal
    message[kind] = value
    return message


def _result_line(request_id, seal, result, ascii_only):
    """A result answer whose result is the response body as awslambdaric serialises it, last
    in the line: sor posts those bytes as they are (runtimes/PROTOCOL.md)."""
    body = _RESULT[ascii_only](result)
    head = b'{"type":"result","id":' + _quoted(request_id)
    if seal is not None:
        head += b',"seal":' + _quoted(seal)
    head += b',"result":'
    return head + body.encode("utf-8", "surrogatepass") + b"}\n"


def _quoted(value):
    """json.dumps(value) as bytes; a str (the usual id and seal) without building an encoder."""
    if type(value) is str:
        return json.encoder.encode_basestring_ascii(value).encode()
    return json.dumps(value).encode()


def _encode(message):
    """One protocol line: UTF-8 JSON (lone surrogates pass, as json.loads accepts them)."""
    data = json.dumps(message, ensure_ascii=False, default=_json_default)
    return data.encode("utf-8", "surrogatepass") + b"\n"


def _json_default(obj):
    # awslambdaric encodes Decimal as its exact digits; the stdlib encoder can only get close.
    if type(obj).__name__ == "Decimal":
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# json.dumps(result, ensure_ascii=..., default=_json_default), its encoder made once, not at
# every answer: by ensure_ascii.
_RESULT = {
    ascii_only: json.JSONEncoder(ensure_ascii=ascii_only, default=_json_default).encode
    for ascii_only in (False, True)
}


def main():
    env = os.environ
    task_root = os.getcwd()
    sys.path.insert(0, task_root)  # the handler's folder comes first, as under awslambdaric
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = Unbuffered(sys.stdout)
    sys.stderr = Unbuffered(sys.stderr)
    server = Server(int(env.get("SOR_IN_FD", "3")), int(env.get("SOR_OUT_FD", "4")), env)
    if env.get("SOR_PROTOCOL", PROTOCOL) != PROTOCOL:
        error = {
            "errorMessage": f"this adapter speaks protocol {PROTOCOL}, not {env['SOR_PROTOCOL']}",
            "errorType": "Runtime.UnsupportedProtocol",
            "stackTrace": [],
        }
        server.send({"type": "init_error", "error": error})
        return 1
    return server.serve(env.get("SOR_HANDLER") or env.get("_HANDLER") or "")
