"""The cross-language matrix for the Python adapter, as node and exec run it.

The same cases (success, handler error, import error, runtime crash, timeout, large payload,
printing handler) run twice: straight over the protocol pipes against
runtimes/python/sor_runtime.py, and through ``sor local invoke`` as a user runs it (supervisor,
runtime loop, embedded emulator).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.runtime_matrix import CASES, local_invoke_case, run_case


@pytest.mark.parametrize("case", CASES)
def test_matrix(tmp_path: Path, case: str) -> None:
    run_case("python", case, tmp_path)


@pytest.mark.parametrize("case", CASES)
def test_matrix_through_sor_local_invoke(tmp_path: Path, case: str) -> None:
    local_invoke_case("python", case, tmp_path / "fn")
