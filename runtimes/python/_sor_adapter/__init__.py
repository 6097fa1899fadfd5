"""sor's Python language runtime adapter, split by concern (runtimes/PROTOCOL.md, version 1).

- ``server``: the protocol loop: reads requests on fd 3, calls the handler, answers on fd 4;
- ``loading``: finding and importing the handler, with Lambda's error names;
- ``context``: the context object awslambdaric gives handlers;
- ``errors``: ERROR objects of exceptions;
- ``logs``: the function's log streams and the `logging` format of Lambda's Python runtime;
- ``debugging``: remote debugging with debugpy (imported only when a session starts);
- ``events``: CloudEvents through the SDK (imported only under the cloudevent signature);
- ``streaming``: streamed answers of iterators and generators (imported at the first stream).

``sor_runtime.py`` beside this folder is the entry point. The package is imported under the
name ``_sor_adapter`` and its folder is not on ``sys.path`` while user code runs, so it neither
shadows nor is shadowed by the function's own modules.
"""
