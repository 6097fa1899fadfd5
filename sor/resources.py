"""Where the data shipped with sor lives: the schema, the language runtime adapters, middlewares."""

from __future__ import annotations

from pathlib import Path


def data_path(*parts: str) -> Path:
    """Path of a shipped data file: inside the installed wheel, or at the top of a source tree."""
    here = Path(__file__).resolve().parent
    installed = here / "_data"
    base = installed if installed.is_dir() else here.parent
    return base.joinpath(*parts)
