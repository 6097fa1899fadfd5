"""sor.runtime.invocation's pure parts: the function timeout from the environment."""

from __future__ import annotations

import io

import pytest

from sor.logs import Log
from sor.runtime.invocation import function_timeout


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-3", "0", "three"])
def test_a_timeout_that_is_no_duration_is_ignored_with_a_warning(text: str) -> None:
    stream = io.StringIO()
    assert function_timeout({"AWS_LAMBDA_FUNCTION_TIMEOUT": text}, Log(stream)) is None
    assert f"AWS_LAMBDA_FUNCTION_TIMEOUT={text!r} ignored" in stream.getvalue()


def test_a_timeout_in_seconds_is_taken() -> None:
    stream = io.StringIO()
    assert function_timeout({"AWS_LAMBDA_FUNCTION_TIMEOUT": "2.5"}, Log(stream)) == 2.5
    assert function_timeout({}, Log(stream)) is None
    assert stream.getvalue() == ""
