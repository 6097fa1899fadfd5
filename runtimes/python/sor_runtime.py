"""sor's Python language runtime: hosts one handler and serves sor's protocol (version 1).

Requests arrive as JSON lines on fd $SOR_IN_FD, answers leave as JSON lines on fd $SOR_OUT_FD
(see runtimes/PROTOCOL.md). stdout and stderr stay the function's logs. The handler sees the same
context object and error documents as under awslambdaric, Lambda's own Python runtime client.
Only light standard-library modules are imported at start-up (json, os, sys, time; the rest when
a request needs it): cold starts pay for this adapter. Under SOR_LOAD=deferred the handler is
loaded only once sor sends `{"type":"load"}` (runtimes/PROTOCOL.md, "deferred load").

The adapter itself is the package ``_sor_adapter`` beside this file, split by concern.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _main():
    # The adapter's package is imported from this folder, which then leaves sys.path: user
    # modules are never shadowed by the adapter's, nor the adapter's by theirs.
    sys.path.insert(0, _HERE)
    from _sor_adapter.server import main

    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    return main()


if __name__ == "__main__":
    sys.exit(_main())
