"""CloudEvents for sor: Lambda events in, CloudEvents out, handler outcomes back to a response.

Pure functions, no IO. The public API:

- ``to_batch(event, settings, *, request_id=None) -> Batch``
- ``answer(batch, outcomes, settings=None) -> response`` (may raise FunctionError)
- ``validate_cloudevent(ce)``, ``is_cloudevent(value)``, ``compile_mappings(settings)``
- ``Batch``, ``Record``, ``Outcome``; errors are ``sor.errors.EventMappingError``.

See docs/cloudevents.md for the mappings and the decisions behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sor.errors import EventMappingError
from sor.events.batch import answer, result, to_batch
from sor.events.http import to_http_response
from sor.events.model import Batch, Outcome, Record, is_cloudevent, validate_cloudevent

if TYPE_CHECKING:
    from sor.config import CloudEventsSettings
    from sor.events.declarative import Compiled

__all__ = [
    "Batch",
    "EventMappingError",
    "Outcome",
    "Record",
    "answer",
    "compile_mappings",
    "is_cloudevent",
    "result",
    "to_batch",
    "to_http_response",
    "validate_cloudevent",
]


def compile_mappings(settings: CloudEventsSettings) -> tuple[Compiled, ...]:
    """Compile ``settings.mappings`` (cached per settings object); ConfigError when malformed.

    ``to_batch`` compiles on first use; calling this at init reports mapping errors early.
    """
    # Lazy: the path compiler is only loaded when mappings exist.
    from sor.events.declarative import compile_mappings as compile_all

    return compile_all(settings)
