"""Remote debugging with debugpy, for one invocation (imported only when a session starts)."""

import sys
import time


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
