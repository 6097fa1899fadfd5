"""`sor config` end to end: a layer file, a function file and the environment, merged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sor.cli import main
from sor.config.model import HOOKS

LAYER_FILE = """\
version: 1
runtime:
  language: python
  handler: layer.handler
middlewares:
  - name: auth
    timeout: {before: 2s}
  - name: audit
timeouts:
  middleware: 500ms
debug:
  enabled: true
"""

FUNCTION_FILE = """\
version: 1
runtime:
  handler: app.handler
middlewares:
  - name: audit
    on_error: continue
  - name: auth
    timeout: 250ms
timeouts:
  grace: 1s
"""


def exe(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\ncat\n")
    path.chmod(0o755)


@pytest.fixture
def function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    fn, layer = tmp_path / "task", tmp_path / "opt"
    fn.mkdir()
    layer.mkdir()
    (layer / "sor.yml").write_text(LAYER_FILE)
    (fn / "sor.yml").write_text(FUNCTION_FILE)
    exe(layer / "middlewares" / "auth")
    exe(layer / "middlewares" / "shout")
    exe(fn / "middlewares" / "audit")
    for var in ("SOR_CONFIG", "SOR_MIDDLEWARES", "SLSMIDDLEWARES", "_HANDLER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOR_LAYER_DIR", str(layer))
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(fn))
    monkeypatch.chdir(tmp_path)
    return fn, layer


def config(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["config", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def values(out: str) -> dict[str, str]:
    """`key: value  # origin` lines as {"middlewares[0].name = auth": origin}-like pairs."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        if "#" in line and not line.startswith("#"):
            text, origin = line.split("#", 1)
            found[text.strip()] = origin.strip()
    return found


def test_layer_function_merge(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fn, layer = function
    code, out, _ = config(capsys)
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["runtime"] == {
        "language": "python",
        "handler": "app.handler",
        "signature": "event",
        "concurrency": "auto",
    }
    assert [m["name"] for m in doc["middlewares"]] == ["audit", "auth"]  # the list replaces
    audit, auth = doc["middlewares"]
    assert audit["path"] == str(fn / "middlewares" / "audit")
    assert audit["on_error"] == "continue"
    assert audit["timeout"] == {"before": "500ms", "after": "500ms", "error": "500ms"}
    assert auth["path"] == str(layer / "middlewares" / "auth")
    assert auth["timeout"] == {"before": "250ms", "after": "250ms", "error": "250ms"}
    assert doc["timeouts"] == {"grace": "1s", "middleware": "500ms"}
    assert doc["debug"] == {"enabled": True, "allow": []}
    origins = values(out)
    assert origins["handler: app.handler"] == f"{fn}/sor.yml:3:12"
    assert origins["language: python"] == f"{layer}/sor.yml:3:13"
    assert origins["middleware: 500ms"] == f"{layer}/sor.yml:10:15"
    assert origins["grace: 1s"] == f"{fn}/sor.yml:10:10"
    assert origins["enabled: true"] == f"{layer}/sor.yml:12:12"
    assert origins["signature: event"] == "default"
    assert origins[f"path: {fn}/middlewares/audit"] == f"found in {fn}/middlewares"
    assert origins["middlewares:"] == f"{fn}/sor.yml:5:3"
    assert f"# files, in merge order: {layer}/sor.yml, {fn}/sor.yml" in out


def test_output_is_a_valid_config(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, out, _ = config(capsys)
    (tmp_path / "effective.yml").write_text(out)
    assert main(["validate", str(tmp_path / "effective.yml")]) == 0


def test_slsmiddlewares_reorders(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fn, layer = function
    monkeypatch.setenv("SLSMIDDLEWARES", "auth,shout,audit")
    code, out, _ = config(capsys)
    assert code == 0
    doc = yaml.safe_load(out)
    assert [m["name"] for m in doc["middlewares"]] == ["auth", "shout", "audit"]
    auth, shout, audit = doc["middlewares"]
    assert auth["timeout"]["before"] == "250ms"  # declared: keeps its settings
    assert audit["on_error"] == "continue"
    assert shout["path"] == str(layer / "middlewares" / "shout")  # undeclared: defaults
    assert shout["on_error"] == "fail"
    assert shout["timeout"] == {"before": "500ms", "after": "500ms", "error": "500ms"}
    origins = values(out)
    assert origins["middlewares:"] == "env SLSMIDDLEWARES"
    assert origins["- name: shout"] == "env SLSMIDDLEWARES"
    assert origins["- name: auth"] == f"{fn}/sor.yml:7:11"


def test_sor_middlewares_wins(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLSMIDDLEWARES", "auth,shout,audit")
    monkeypatch.setenv("SOR_MIDDLEWARES", "shout")
    code, out, _ = config(capsys)
    assert code == 0
    assert [m["name"] for m in yaml.safe_load(out)["middlewares"]] == ["shout"]
    assert values(out)["middlewares:"] == "env SOR_MIDDLEWARES"


@pytest.mark.parametrize("var", ["SOR_MIDDLEWARES", "SLSMIDDLEWARES"])
def test_empty_value_disables_middlewares(
    function: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    var: str,
) -> None:
    monkeypatch.setenv(var, "")
    code, out, _ = config(capsys)
    assert code == 0
    assert yaml.safe_load(out)["middlewares"] == []
    assert values(out)["middlewares: []"] == f"env {var}"


def test_handler_env_and_dir_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("SOR_CONFIG", "SOR_MIDDLEWARES", "SLSMIDDLEWARES", "LAMBDA_TASK_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOR_LAYER_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("_HANDLER", "main.handler")
    (tmp_path / "fn").mkdir()
    code, out, _ = config(capsys, str(tmp_path / "fn"))
    assert code == 0
    assert yaml.safe_load(out)["runtime"]["handler"] == "main.handler"
    assert values(out)["handler: main.handler"] == "env _HANDLER"
    assert f"# function folder: {tmp_path}/fn" in out


def test_problems_exit_one(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fn, _ = function
    monkeypatch.setenv("SOR_MIDDLEWARES", "auth,../../bin/sh")
    code, out, err = config(capsys)
    assert (code, out) == (1, "")
    assert "$SOR_MIDDLEWARES:1:6: middlewares: middleware name '../../bin/sh'" in err
    monkeypatch.delenv("SOR_MIDDLEWARES")
    (fn / "sor.yml").write_text("version: 1\nruntime: {language: exec}\n")
    code, out, err = config(capsys)
    assert (code, out) == (1, "")
    assert f"{fn}/sor.yml:2:21: runtime.language: language exec needs `command`" in err


def test_as_a_user_runs_it(function: tuple[Path, Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sor", "config"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["runtime"]["handler"] == "app.handler"


def test_example_config_round_trips(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fn, _ = function
    example = Path(__file__).resolve().parents[2] / "config.example.yml"
    (fn / "sor.yml").write_text(example.read_text())
    exe(fn / "middlewares" / "log-event")
    exe(fn / "tools" / "audit")
    code, out, err = config(capsys)
    assert code == 0, err
    doc = yaml.safe_load(out)
    source = yaml.safe_load(example.read_text())
    assert doc["cloudevents"] == source["cloudevents"]
    assert doc["debug"] == source["debug"]
    assert doc["shutdown"] == source["shutdown"] == {"signal": True}
    assert doc["middlewares"][2]["hooks"] == ["after", "error", "shutdown"]
    assert [m["name"] for m in doc["middlewares"]] == ["log-event", "auth", "audit"]
    assert doc["middlewares"][2]["path"] == str(fn / "tools" / "audit")
    assert [m["env"] for m in doc["middlewares"]] == ["inherit", "inherit", ["STAGE"]]
    assert values(out)["before: 1s"] == f"timeouts.middleware: {fn}/sor.yml:38:15"
    (tmp_path / "effective.yml").write_text(out)
    assert main(["validate", str(tmp_path / "effective.yml")]) == 0


def test_items_of_a_replaced_list_keep_no_origin_from_the_replaced_file(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fn, layer = function
    (layer / "sor.yml").write_text(
        "version: 1\n"
        "middlewares:\n"
        "  - name: auth\n"
        "    mode: persistent\n"
        "    on_error: continue\n"
        "    hooks: [before]\n"
        "    timeout: {after: 2s}\n"
        "timeouts: {middleware: 300ms}\n"
    )
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.handler}\nmiddlewares: [{name: auth}]\n"
    )
    code, out, err = config(capsys)
    assert code == 0, err
    [auth] = yaml.safe_load(out)["middlewares"]
    assert (auth["mode"], auth["on_error"], auth["hooks"]) == ("exec", "fail", list(HOOKS))
    assert auth["timeout"] == {"before": "300ms", "after": "300ms", "error": "300ms"}
    origins = values(out)
    assert origins["- name: auth"] == f"{fn}/sor.yml:3:22"
    assert origins["mode: exec"] == "default"  # not the layer's `mode: persistent` line
    assert origins["on_error: fail"] == "default"
    assert origins["hooks: [before, after, error]"] == "default"
    assert origins["after: 300ms"] == f"timeouts.middleware: {layer}/sor.yml:8:24"
    assert origins["middlewares:"] == f"{fn}/sor.yml:3:14"
    assert f"{layer}/sor.yml:4" not in out and f"{layer}/sor.yml:5" not in out


def test_mappings_inside_a_kept_list_item_still_merge_origins(
    function: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fn, layer = function
    # The function file says nothing about middlewares: the layer's list is the merged one.
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.handler}\n")
    code, out, err = config(capsys)
    assert code == 0, err
    origins = values(out)
    assert origins["- name: auth"] == f"{layer}/sor.yml:6:11"
    assert origins["before: 2s"] == f"{layer}/sor.yml:7:23"
    assert origins["handler: app.handler"] == f"{fn}/sor.yml:2:20"
    assert origins["language: python"] == f"{layer}/sor.yml:3:13"


INVALID_FILE = """\
version: 1
runtime:
  language: cobol
  handler: 5
timeouts:
  grace: abc
bogus: 1
"""


@pytest.mark.parametrize("command", ["config", "validate"])
def test_each_command_names_itself_on_an_invalid_file(tmp_path: Path, command: str) -> None:
    (tmp_path / "sor.yml").write_text(INVALID_FILE)
    env = {"PATH": "/usr/bin:/bin", "SOR_LAYER_DIR": str(tmp_path / "none")}
    argv = [sys.executable, "-m", "sor", command] + (["."] if command == "config" else [])
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.endswith("\n") and done.stdout.endswith(
        "\n" if command == "validate" else ""
    )
    # `sor config` reports the problems on stderr (its stdout is YAML); `sor validate` on stdout
    report = (done.stderr if command == "config" else done.stdout).splitlines()
    problems = [line for line in report if line.startswith(f"{tmp_path / 'sor.yml'}:")]
    paths = [line.split(": ")[1] for line in problems]
    assert paths == ["runtime.language", "runtime.handler", "timeouts.grace", "bogus"]
    (summary,) = [line for line in done.stderr.splitlines() if line not in problems]
    assert summary.startswith(f"sor {command}: ") and "4 problem(s)" in summary
