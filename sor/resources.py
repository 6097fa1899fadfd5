"""Where the data shipped with sor lives: the schema, the language runtime adapters, middlewares."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def data_file(*parts: str) -> str:
    """Path of a shipped data file: inside the installed wheel, or at the top of a source tree."""
    here = os.path.dirname(os.path.realpath(__file__))
    installed = os.path.join(here, "_data")
    base = installed if os.path.isdir(installed) else os.path.dirname(here)
    return os.path.join(base, *parts)


def data_path(*parts: str) -> Path:
    """`data_file` as a Path (not loaded for `sor run`'s language runtime: it spawns first)."""
    from pathlib import Path

    return Path(data_file(*parts))
