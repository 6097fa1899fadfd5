"""`sor validate` driven as a user drives it: through the real CLI, on real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.bad_configs import BAD, BAD_NAN, H

from sor.cli import main
from sor.resources import data_path

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t, e) for _, t, e in BAD + BAD_NAN],
    ids=[i for i, _, _ in BAD + BAD_NAN],
)
def test_bad_config_reports_exact_place(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    expected: list[tuple[int, int, str, str]],
) -> None:
    file = tmp_path / "sor.yml"
    file.write_text(text)
    code, out, _ = run(capsys, str(file))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == len(expected), out
    for line, (row, col, path, message) in zip(lines, expected, strict=True):
        assert line.startswith(f"{file}:{row}:{col}: {path or '<root>'}: "), line
        assert message in line
        assert "does not match '^" not in line  # never a raw regular expression


def test_there_are_at_least_thirty_distinct_bad_configs() -> None:
    assert len({text for _, text, _ in BAD}) >= 30


def test_every_problem_of_a_file_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "many.yml"
    file.write_text(
        "version: 1\n"
        "runtime:\n"
        "  language: ruby\n"
        "middlewares:\n"
        "  - name: ../etc\n"
        "    timeout: fast\n"
        "  - name: ok\n"
        "    on_error: maybe\n"
        "extra: 1\n"
    )
    code, out, err = run(capsys, str(file))
    assert code == 1
    assert out.splitlines() == [
        f"{file}:3:13: runtime.language: unknown language 'ruby': use one of python, node, exec",
        f"{file}:5:11: middlewares[0].name: middleware name '../etc' must not contain '/': names"
        " are looked up inside middlewares/ folders (use `path` for an executable elsewhere)",
        f"{file}:6:14: middlewares[0].timeout: 'fast' is not a duration: use a number of seconds"
        " (0.5) or a number with a unit: 250ms, 2s, 1m",
        f"{file}:8:15: middlewares[1].on_error: unknown on_error 'maybe': use one of fail,"
        " continue",
        f"{file}:9:1: extra: unknown key 'extra': allowed keys are cloudevents, debug, middlewares,"
        " runtime, shutdown, timeouts, version",
    ]
    assert "5 problem(s)" in err


def test_several_files_each_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yml"
    good.write_text(H)
    bad1 = tmp_path / "bad1.yml"
    bad1.write_text("version: 3\n")
    bad2 = tmp_path / "bad2.yml"
    bad2.write_text("[]\n")
    code, out, _ = run(capsys, str(good), str(bad1), str(bad2))
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == [str(bad1), str(bad2)]


def test_valid_file_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "sor.yml"
    file.write_text(H + "middlewares:\n  - name: auth\n    timeout: {before: 250ms}\n")
    code, out, err = run(capsys, str(file))
    assert (code, out) == (0, "")
    assert "valid" in err


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "nope.yml"))
    assert code == 2
    assert "no such file" in err and "nope.yml" in err


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "sor.yml"
    file.write_text("version: 1\nruntime: {language: cobol}\n")
    code, out, _ = run(capsys, "--format", "json", str(file))
    assert code == 1
    assert json.loads(out) == [
        {
            "file": str(file),
            "line": 2,
            "col": 21,
            "path": "runtime.language",
            "message": "unknown language 'cobol': use one of python, node, exec",
        }
    ]
    file.write_text(H)
    assert run(capsys, "--format", "json", str(file))[:2] == (0, "[]\n")


def test_github_format_escapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "a,b.yml"
    file.write_text("version: 1\nruntime: {handler: '100%'}\n")
    code, out, _ = run(capsys, "--format", "github", str(file))
    assert code == 1
    where = str(file).replace(":", "%3A").replace(",", "%2C")
    assert out == (
        f"::error file={where},line=2,col=20::runtime.handler: handler '100%25' is not of the form"
        " module.function for python (e.g. handler.hello or src/handler.hello)\n"
    )


def test_as_a_user_runs_it(tmp_path: Path) -> None:
    file = tmp_path / "sor.yml"
    file.write_text("version: 1\nruntime: {language: ruby}\n")
    done = subprocess.run(
        [sys.executable, "-m", "sor", "validate", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"{file}:2:21: runtime.language: unknown language 'ruby'")


def test_example_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(REPO / "config.example.yml"))
    assert (code, out) == (0, "")


def _discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fn = tmp_path / "fn"
    fn.mkdir()
    for var in ("SOR_CONFIG", "SOR_MIDDLEWARES", "SLSMIDDLEWARES", "_HANDLER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(fn))
    monkeypatch.setenv("SOR_LAYER_DIR", str(tmp_path / "layer"))
    return fn


def test_discovered_config_includes_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = _discovered(tmp_path, monkeypatch)
    (fn / "sor.yml").write_text(H + "middlewares:\n  - name: ghost\n")
    code, out, _ = run(capsys)
    assert code == 1
    assert out == (
        f"{fn}/sor.yml:4:11: middlewares[0].name: middleware 'ghost' not found: there is no "
        f"{fn}/middlewares/ghost nor {tmp_path}/layer/middlewares/ghost nor "
        f"{data_path('middlewares')}/ghost\n"
    )
    (fn / "middlewares").mkdir()
    (fn / "middlewares" / "ghost").write_text("#!/bin/sh\ncat\n")
    os.chmod(fn / "middlewares" / "ghost", 0o755)
    assert run(capsys)[:2] == (0, "")


def test_discovered_example_with_its_middlewares_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = _discovered(tmp_path, monkeypatch)
    shutil.copy(REPO / "config.example.yml", fn / "sor.yml")
    for where in ("middlewares/log-event", "middlewares/auth", "tools/audit"):
        exe = fn / where
        exe.parent.mkdir(exist_ok=True)
        exe.write_text("#!/bin/sh\ncat\n")
        exe.chmod(0o755)
    assert run(capsys)[:2] == (0, "")


def test_nothing_to_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _discovered(tmp_path, monkeypatch)
    code, out, err = run(capsys)
    assert (code, out) == (1, "")
    assert "no configuration" in err and "_HANDLER" in err


def test_an_alias_bomb_and_a_huge_file_are_config_problems(tmp_path: Path) -> None:
    # Through the command line, as the hostile-input run did: both answered at once, in little
    # memory (the bomb expands to 10**9 values; the big file is never read whole).
    bomb = tmp_path / "bomb.yml"
    lines = ["version: 1", "cloudevents:", "  mappings:", "    - match:"]
    lines.append("        a: &a [x, x, x, x, x, x, x, x, x, x]")
    for i in range(1, 9):
        ref = ", ".join([f"*{chr(96 + i)}"] * 10)
        lines.append(f"        {chr(97 + i)}: &{chr(97 + i)} [{ref}]")
    bomb.write_text("\n".join(lines) + "\n")
    huge = tmp_path / "huge.yml"
    huge.write_text("version: 1\n" + "# padding\n" * 120_000)
    done = subprocess.run(
        [sys.executable, "-m", "sor", "validate", str(bomb), str(huge)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"{bomb}:9:44: cloudevents.mappings[0].match.e: the file's aliases expand" in (
        done.stdout
    )
    assert f"{huge}:1:1: <root>: the file is 1200011 bytes: a sor.yml may be at most" in (
        done.stdout
    )
