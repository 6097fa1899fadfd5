"""sor.cli: the argparse path and the `sor run` fast path that skips it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sor.cli import main

PROBE = (
    "import json, sys\nfrom sor.cli import main\ncode = main(sys.argv[1:])\n"
    "print(json.dumps({'code': code, 'argparse': 'argparse' in sys.modules,"
    " 'jsonschema': 'jsonschema' in sys.modules, 'yaml': 'yaml' in sys.modules}))\n"
)


def _probe(*argv: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, timeout=30
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def test_run_skips_argparse_and_still_reports_usage_errors() -> None:
    result = _probe("run")
    assert result["code"] == 2
    assert "AWS_LAMBDA_RUNTIME_API" in str(result["stderr"])
    assert (result["argparse"], result["jsonschema"], result["yaml"]) == (False, False, False)


def test_run_with_extra_arguments_goes_through_argparse() -> None:
    result = _probe("run", "--bogus")
    assert result["code"] == 2 and result["argparse"] is True
    assert "unrecognized arguments: --bogus" in str(result["stderr"])


def test_other_commands_parse_their_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("sor ")
    assert main(["validate", "--format", "nope"]) == 2
