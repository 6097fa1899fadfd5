"""`middlewares[].env`: the function variables a middleware may see (SOR_* and the basics of
starting a process always); by default all of them. Real config files, real middlewares in sh,
Python and Node, in exec and persistent mode, through the real pipeline."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from sor.commands.config import render
from sor.config.loader import load, load_with_origins
from sor.logs import Log
from sor.middleware.pipeline import Pipeline

FUNCTION_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "STAGE": "prod",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    "AWS_SESSION_TOKEN": "t0ken",
    "DB_PASSWORD": "hunter2",
}
CONTEXT = {"aws_request_id": "req-1", "deadline_ms": 1234567, "function_name": "fn"}

# Each answers the `before` hook with the names of the variables it sees.
SH = """#!/bin/sh
if [ "$1" = persistent ]; then
  while read -r line; do
    printf '{"payload":{"seen":"%s"}}\\n' "$(env | cut -d= -f1 | sort | tr '\\n' ' ')"
  done
else
  cat >/dev/null
  printf '{"seen":"%s"}\\n' "$(env | cut -d= -f1 | sort | tr '\\n' ' ')"
fi
"""
PY = f"""#!{sys.executable}
import json, os, sys
def seen():
    return " ".join(sorted(os.environ))
if sys.argv[1] == "persistent":
    for line in sys.stdin:
        print(json.dumps({{"payload": {{"seen": seen()}}}}), flush=True)
else:
    sys.stdin.read()
    print(json.dumps({{"seen": seen()}}))
"""
JS = """#!/usr/bin/env node
const seen = () => Object.keys(process.env).sort().join(' ');
if (process.argv[2] === 'persistent') {
  require('readline').createInterface({ input: process.stdin })
    .on('line', () => process.stdout.write(JSON.stringify({ payload: { seen: seen() } }) + '\\n'));
} else {
  process.stdin.resume();
  process.stdin.on('end', () => process.stdout.write(JSON.stringify({ seen: seen() }) + '\\n'));
}
"""
SOURCES = {"sh": SH, "py": PY, "js": JS}


def function(tmp_path: Path, language: str, mode: str, env: Any) -> dict[str, str]:
    """A function folder with one middleware `spy` in ``language``; the function environment."""
    fn = tmp_path / "fn"
    (fn / "middlewares").mkdir(parents=True)
    spy = fn / "middlewares" / "spy"
    spy.write_text(SOURCES[language])
    spy.chmod(0o755)
    declared: dict[str, Any] = {"name": "spy", "mode": mode}
    if env is not None:
        declared["env"] = env
    config = {"version": 1, "runtime": {"handler": "h.f"}, "middlewares": [declared]}
    (fn / "sor.yml").write_text(json.dumps(config))
    return {**FUNCTION_ENV, "LAMBDA_TASK_ROOT": str(fn), "SOR_LAYER_DIR": str(tmp_path / "no")}


def seen_by_the_middleware(env: dict[str, str]) -> set[str]:
    config = load(env, Path(env["LAMBDA_TASK_ROOT"]))
    pipeline = Pipeline(config.middlewares, log=Log(io.StringIO()), env=env)
    pipeline.start()
    try:
        seen: dict[str, Any] = {}

        def handler(payload: Any) -> Any:
            seen.update(payload)
            return "ok"

        pipeline.run({}, CONTEXT, handler, _far(), _far(), {})
    finally:
        pipeline.close()
    return set(str(seen["seen"]).split())


def _far() -> float:
    import time

    return time.monotonic() + 30


@pytest.mark.parametrize("language", ["sh", "py", "js"])
@pytest.mark.parametrize("mode", ["exec", "persistent"])
def test_a_middleware_sees_only_what_its_env_lists(
    tmp_path: Path, language: str, mode: str
) -> None:
    if language == "js" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    seen = seen_by_the_middleware(function(tmp_path, language, mode, ["STAGE"]))
    assert "STAGE" in seen and "PATH" in seen and "LANG" in seen
    assert not seen & {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "DB_PASSWORD"}
    assert "LAMBDA_TASK_ROOT" not in seen  # a function variable it does not list
    if mode == "exec":  # what the protocol gives an exec hook is always there
        assert {"SOR_HOOK", "SOR_REQUEST_ID", "SOR_DEADLINE_MS", "SOR_FUNCTION_NAME"} <= seen


@pytest.mark.parametrize("env", [None, "inherit"])
def test_by_default_a_middleware_inherits_every_variable(tmp_path: Path, env: Any) -> None:
    seen = seen_by_the_middleware(function(tmp_path, "sh", "exec", env))
    assert set(FUNCTION_ENV) <= seen


def test_an_empty_list_leaves_only_the_basics(tmp_path: Path) -> None:
    seen = seen_by_the_middleware(function(tmp_path, "py", "persistent", []))
    assert not seen & set(FUNCTION_ENV) - {"PATH", "LANG"}


def test_the_model_the_origin_and_sor_config(tmp_path: Path) -> None:
    env = function(tmp_path, "sh", "exec", ["STAGE", "DB_HOST"])
    loaded = load_with_origins(env, tmp_path)
    assert loaded.config.middlewares[0].env == ("STAGE", "DB_HOST")
    text = render(loaded)
    (line,) = [ln for ln in text.splitlines() if ln.lstrip().startswith("env:")]
    assert line.split("#")[0].strip() == 'env: ["STAGE", "DB_HOST"]'
    assert "sor.yml" in line.split("#")[1]
    inherit = render(load_with_origins(function(tmp_path / "b", "sh", "exec", None), tmp_path))
    (line,) = [ln for ln in inherit.splitlines() if ln.lstrip().startswith("env:")]
    assert line.split("#")[0].strip() == "env: inherit" and line.endswith("# default")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("all", "'inherit' was expected"),
        (["NOT-A-NAME"], "is not valid"),
        ([1], "[1] is not valid"),
    ],
)
def test_a_bad_env_is_a_config_problem(tmp_path: Path, env: Any, message: str) -> None:
    from sor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load(function(tmp_path, "sh", "exec", env), tmp_path)
    (problem,) = info.value.problems
    assert problem.path == "middlewares[0].env" and message in problem.message
