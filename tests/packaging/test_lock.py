"""The lock file: what the README's commands, CI and `sor package` install is pinned there."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from support.lock import canonical, locked_versions

ROOT = Path(__file__).resolve().parents[2]
# The interpreter's own installers come with the virtual environment, not from the lock.
_BUNDLED = {"pip", "setuptools", "wheel"}


def test_every_installed_distribution_is_the_locked_version() -> None:
    pins = locked_versions()
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name == "sor" or name in _BUNDLED:
            continue
        assert name in pins, f"{name} is installed but not in requirements.lock"
        assert dist.version == pins[name], f"{name} {dist.version}, locked {pins[name]}"


def test_every_declared_dependency_is_locked() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    document = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = document["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    declared += document["build-system"]["requires"]
    pins = locked_versions()
    for requirement in declared:
        name = canonical(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])
        assert name in pins, f"{requirement} (pyproject.toml) is not pinned in requirements.lock"
