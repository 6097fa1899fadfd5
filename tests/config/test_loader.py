"""Discovery, merge, environment overrides and middleware resolution, on real folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sor.config.loader import check_file, discover, load, load_with_origins
from sor.config.merge import merge
from sor.config.model import HookTimeouts
from sor.errors import ConfigError
from sor.resources import data_path


def exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\ncat\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    fn, layer = tmp_path / "fn", tmp_path / "layer"
    fn.mkdir()
    layer.mkdir()
    return fn, layer, {"LAMBDA_TASK_ROOT": str(fn), "SOR_LAYER_DIR": str(layer)}


def test_merge_mappings_key_by_key_lists_replace() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"c": [3]}, "e": 2}
    assert merge(base, over) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_handler_alone(tmp_path: Path) -> None:
    config = load({"_HANDLER": "app.handler", "SOR_LAYER_DIR": str(tmp_path)}, tmp_path)
    assert config.runtime.language == "python"
    assert config.runtime.handler == "app.handler"
    assert config.middlewares == ()
    assert config.task_root == str(tmp_path)  # sor's places are strings (no pathlib)


def test_nothing_at_all_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"SOR_LAYER_DIR": str(tmp_path / "opt")}, tmp_path)
    assert caught.value.problems == ()
    assert f"{tmp_path}/opt/sor.yml" in caught.value.message
    assert f"{tmp_path}/sor.yml" in caught.value.message
    assert "_HANDLER" in caught.value.message and "SOR_CONFIG" in caught.value.message


def test_task_root_defaults_to_cwd_and_layer_is_found(
    dirs: tuple[Path, Path, dict[str, str]],
) -> None:
    fn, layer, env = dirs
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.handler}\n")
    (layer / "sor.yml").write_text("version: 1\ntimeouts: {grace: 500ms}\n")
    env.pop("LAMBDA_TASK_ROOT")
    assert discover(env, fn) == [str(layer / "sor.yml"), str(fn / "sor.yml")]
    config = load(env, fn)
    assert (config.runtime.handler, config.timeouts.grace, config.timeouts.middleware) == (
        "app.handler",
        0.5,
        1.0,
    )


def test_sor_config_replaces_both_files(
    dirs: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    fn, layer, env = dirs
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: fn.h}\n")
    (layer / "sor.yml").write_text("version: 1\nruntime: {handler: layer.h}\n")
    (tmp_path / "other.yml").write_text("version: 1\nruntime: {language: node, handler: other.h}\n")
    config = load({**env, "SOR_CONFIG": "other.yml"}, tmp_path)
    assert (config.runtime.language, config.runtime.handler) == ("node", "other.h")
    with pytest.raises(ConfigError, match=r"SOR_CONFIG=missing\.yml: no such file"):
        load({**env, "SOR_CONFIG": "missing.yml"}, tmp_path)


def test_handler_env_fills_only_a_missing_handler(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, _, env = dirs
    (fn / "sor.yml").write_text("version: 1\nruntime: {language: node}\n")
    assert load({**env, "_HANDLER": "index.handler"}, fn).runtime.handler == "index.handler"
    (fn / "sor.yml").write_text("version: 1\nruntime: {language: node, handler: app.run}\n")
    assert load({**env, "_HANDLER": "index.handler"}, fn).runtime.handler == "app.run"


def test_missing_handler_is_a_problem(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, _, env = dirs
    (fn / "sor.yml").write_text("version: 1\ntimeouts: {grace: 1s}\n")
    with pytest.raises(ConfigError) as caught:
        load(env, fn)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.col) == (str(fn / "sor.yml"), 1, 1)
    assert "no handler" in problem.message


def test_every_file_problem_at_once(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, layer, env = dirs
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: x}\n")
    (layer / "sor.yml").write_text("version: 2\n")
    with pytest.raises(ConfigError) as caught:
        load(env, fn)
    assert [(p.file, p.path) for p in caught.value.problems] == [
        (str(layer / "sor.yml"), "version"),
        (str(fn / "sor.yml"), "runtime.handler"),
    ]
    assert caught.value.exit_code == 2


def test_shutdown_is_off_unless_asked_for(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, _, env = dirs
    for name in ("a", "b"):
        exe(fn / "middlewares" / name)
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.h}\nmiddlewares: [{name: a}]\n")
    config = load(env, fn)
    assert config.shutdown.signal is False and not config.handles_shutdown
    assert "shutdown" not in config.middlewares[0].hooks  # not a default hook
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h}\n"
        "middlewares: [{name: a}, {name: b, hooks: [before, shutdown]}]\n"
    )
    config = load(env, fn)
    assert config.middlewares[1].hooks == ("before", "shutdown")
    assert config.shutdown.signal is False and config.handles_shutdown
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.h}\nshutdown: {signal: true}\n")
    config = load(env, fn)
    assert config.shutdown.signal is True and config.handles_shutdown
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.h}\nshutdown: {signal: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load(env, fn)
    assert [p.path for p in caught.value.problems] == ["shutdown.signal"]


def test_durations_and_hook_timeouts(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, _, env = dirs
    for name in ("a", "b", "c"):
        exe(fn / "middlewares" / name)
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h}\ntimeouts: {middleware: 750ms, grace: 1}\n"
        "middlewares:\n  - name: a\n  - name: b\n    timeout: 2s\n"
        "  - name: c\n    timeout: {after: 1m}\n    mode: persistent\n    on_error: continue\n"
        "    hooks: [after]\n"
    )
    config = load(env, fn)
    a, b, c = config.middlewares
    assert config.timeouts.grace == 1.0
    assert a.timeouts == HookTimeouts(0.75, 0.75, 0.75)
    assert b.timeouts == HookTimeouts(2.0, 2.0, 2.0)
    assert c.timeouts == HookTimeouts(before=0.75, after=60.0, error=0.75)
    assert (c.mode, c.on_error, c.hooks) == ("persistent", "continue", ("after",))
    assert (a.mode, a.on_error, a.hooks) == ("exec", "fail", ("before", "after", "error"))


def test_resolution_order_and_explicit_paths(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, layer, env = dirs
    exe(fn / "middlewares" / "both")
    exe(layer / "middlewares" / "both")
    exe(layer / "middlewares" / "layer-only")
    exe(layer / "tools" / "audit")
    (layer / "sor.yml").write_text(
        "version: 1\nmiddlewares:\n  - name: both\n  - name: layer-only\n"
        "  - name: audit\n    path: tools/audit\n"
    )
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.h}\n")
    paths = [m.path for m in load(env, fn).middlewares]
    assert paths == [
        str(fn / "middlewares" / "both"),
        str(layer / "middlewares" / "layer-only"),
        str(layer / "tools" / "audit"),  # relative to the file that declares it, not the function
    ]
    assert all(os.path.isabs(p) for p in paths)


def test_unfound_and_not_executable(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, layer, env = dirs
    (fn / "middlewares").mkdir()
    (fn / "middlewares" / "plain").write_text("#!/bin/sh\n")
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h}\nmiddlewares:\n  - name: ghost\n  - name: plain\n"
        "  - name: far\n    path: ../elsewhere/far\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(env, fn)
    problems = caught.value.problems
    assert [(p.line, p.col, p.path) for p in problems] == [
        (4, 11, "middlewares[0].name"),
        (5, 11, "middlewares[1].name"),
        (6, 11, "middlewares[2].name"),
    ]
    assert problems[0].message == (
        f"middleware 'ghost' not found: there is no {fn}/middlewares/ghost nor "
        f"{layer}/middlewares/ghost nor {data_path('middlewares')}/ghost"
    )
    assert "is not executable (chmod +x" in problems[1].message
    assert f"there is no {fn.parent}/elsewhere/far" in problems[2].message


def test_shipped_middlewares_are_the_last_resort(
    dirs: tuple[Path, Path, dict[str, str]],
) -> None:
    fn, _, env = dirs
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h}\nmiddlewares: [{name: warmup}]\n"
    )
    assert load(env, fn).middlewares[0].path == str(data_path("middlewares", "warmup"))
    (fn / "middlewares").mkdir()
    (fn / "middlewares" / "warmup").write_text("#!/bin/sh\n")
    (fn / "middlewares" / "warmup").chmod(0o755)
    assert load(env, fn).middlewares[0].path == str(fn / "middlewares" / "warmup")


def test_env_list_replaces_and_orders(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, layer, env = dirs
    exe(fn / "middlewares" / "a")
    exe(fn / "middlewares" / "b")
    exe(layer / "middlewares" / "extra")
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h}\nmiddlewares:\n  - name: a\n    timeout: 3s\n"
        "  - name: b\n"
    )
    config = load({**env, "SLSMIDDLEWARES": " extra , a"}, fn)
    assert [m.name for m in config.middlewares] == ["extra", "a"]
    assert config.middlewares[0].path == str(layer / "middlewares" / "extra")
    assert config.middlewares[1].timeouts.before == 3.0  # a declared name keeps its settings
    both = {**env, "SLSMIDDLEWARES": "a", "SOR_MIDDLEWARES": "b"}
    assert [m.name for m in load(both, fn).middlewares] == ["b"]
    assert load({**env, "SOR_MIDDLEWARES": ""}, fn).middlewares == ()
    assert load({**env, "SOR_MIDDLEWARES": "", "SLSMIDDLEWARES": "a"}, fn).middlewares == ()


@pytest.mark.parametrize("value", ["../etc/passwd", "a/b", "..", ".hidden", "a\\b"])
def test_env_names_that_escape_are_refused(
    dirs: tuple[Path, Path, dict[str, str]], value: str
) -> None:
    fn, _, env = dirs
    exe(fn / "middlewares" / "a")
    (fn / "sor.yml").write_text("version: 1\nruntime: {handler: app.h}\n")
    with pytest.raises(ConfigError) as caught:
        load({**env, "SOR_MIDDLEWARES": f"a,{value}"}, fn)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.col) == ("$SOR_MIDDLEWARES", 1, 3)
    assert problem.message.endswith("; refused")


def test_env_name_not_found_points_into_the_variable(
    dirs: tuple[Path, Path, dict[str, str]],
) -> None:
    fn, _, env = dirs
    with pytest.raises(ConfigError) as caught:
        load({**env, "_HANDLER": "app.h", "SLSMIDDLEWARES": "x,  nope"}, fn)
    assert [(p.file, p.col) for p in caught.value.problems] == [
        ("$SLSMIDDLEWARES", 1),
        ("$SLSMIDDLEWARES", 5),
    ]


def test_origins(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, layer, env = dirs
    exe(layer / "middlewares" / "a")
    (layer / "sor.yml").write_text("version: 1\ntimeouts:\n  middleware: 2s\n")
    (fn / "sor.yml").write_text("version: 1\nmiddlewares:\n  - name: a\n")
    loaded = load_with_origins({**env, "_HANDLER": "app.h"}, fn)
    origins = {k: str(v) for k, v in loaded.origins.items()}
    assert origins[("timeouts", "middleware")] == f"{layer}/sor.yml:3:15"
    assert origins[("middlewares", 0, "timeout", "after")] == (
        f"timeouts.middleware: {layer}/sor.yml:3:15"
    )
    assert origins[("middlewares", 0, "name")] == f"{fn}/sor.yml:3:11"
    assert origins[("middlewares", 0, "path")] == f"found in {layer}/middlewares"
    assert origins[("runtime", "handler")] == "env _HANDLER"
    assert origins[("timeouts", "grace")] == "default"
    assert loaded.files == (str(layer / "sor.yml"), str(fn / "sor.yml"))


def test_check_file_is_cached_by_content(tmp_path: Path) -> None:
    file = tmp_path / "sor.yml"
    file.write_text("version: 1\n")
    first = check_file(file)
    assert check_file(file) is first
    file.write_text("version: 2\n")
    assert check_file(file) is not first
    assert len(check_file(file)[1]) == 1


def test_handler_alone_with_env_middlewares(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, layer, env = dirs
    exe(layer / "middlewares" / "log")
    config = load({**env, "_HANDLER": "app.h", "SLSMIDDLEWARES": "log"}, fn)
    assert [(m.name, m.path, m.timeouts.after) for m in config.middlewares] == [
        ("log", str(layer / "middlewares" / "log"), 1.0)
    ]


def test_version_is_an_int(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    fn, _, env = dirs
    (fn / "sor.yml").write_text("version: 1.0\nruntime: {handler: app.h}\n")
    assert load(env, fn).version == 1


def test_check_file_reads_the_file_or_says_why_not(tmp_path: Path) -> None:
    # The one way a config file is read (yamlsource only parses text).
    source, [problem] = check_file(tmp_path / "missing.yml")
    assert problem.message.startswith("cannot read the file")
    assert (problem.file, problem.line, problem.col) == (str(tmp_path / "missing.yml"), 1, 1)
    assert source.data is None and source.problems == [problem]
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"version: 1\n# caf\xe9\n")
    _, [problem] = check_file(latin, "latin.yml")
    assert problem.file == "latin.yml" and "cannot read the file" in problem.message
    good = tmp_path / "ok.yml"
    good.write_text("version: 1\nruntime: {handler: app.handler}\n")
    source, problems = check_file(good, "ok.yml")
    assert problems == () and source.file == "ok.yml"
    assert source.data == {"version": 1, "runtime": {"handler": "app.handler"}}


def test_a_non_finite_duration_never_becomes_the_default(
    dirs: tuple[Path, Path, dict[str, str]],
) -> None:
    fn, layer, env = dirs
    exe(fn / "middlewares" / "a")
    (layer / "sor.yml").write_text("version: 1\ntimeouts: {grace: .inf}\n")
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h}\nmiddlewares:\n  - name: a\n"
        "    timeout: {error: .nan}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(env, fn)
    assert [str(p) for p in caught.value.problems] == [
        f"{layer}/sor.yml:2:19: timeouts.grace: .inf is not a duration: a duration is a finite "
        "number of seconds (0.5) or a string with a unit (250ms, 2s, 1m)",
        f"{fn}/sor.yml:5:22: middlewares[0].timeout.error: .nan is not a duration: a duration "
        "is a finite number of seconds (0.5) or a string with a unit (250ms, 2s, 1m)",
    ]


def test_unchecked_data_with_a_bad_duration_is_a_problem_not_a_default(tmp_path: Path) -> None:
    # effective.build reads durations itself too: data that never went through the rules
    # (a caller that merged files by hand) still gets a placed problem, never the default.
    from sor.config.effective import build
    from sor.config.merge import Merged
    from sor.config.yaml_source import parse

    source = parse("version: 1\nruntime: {handler: app.h}\ntimeouts:\n  grace: .nan\n", "f.yml")
    _, _, problems = build(Merged([source]), {}, tmp_path, tmp_path)
    assert [str(p) for p in problems] == [
        "f.yml:4:10: timeouts.grace: nan is not a duration of more than 0 seconds"
    ]


def test_supplier_follows_the_merge() -> None:
    from sor.config.effective import supplier
    from sor.config.yaml_source import parse

    layer = parse(
        "version: 1\nruntime: {language: python}\nmiddlewares:\n  - {name: a, mode: persistent}\n"
        "debug: {allow: [h1, h2]}\n",
        "layer",
    )
    fn = parse("version: 1\nruntime: {handler: x.y}\nmiddlewares: [{name: b}]\ndebug: 3\n", "fn")
    sources = [layer, fn]
    assert [s.file for s in sources] == ["layer", "fn"]
    assert supplier(sources, ("runtime", "language")) is layer  # mappings merge
    assert supplier(sources, ("runtime", "handler")) is fn
    assert supplier(sources, ("runtime",)) is fn  # the last of the mappings merged
    assert supplier(sources, ("middlewares", 0, "name")) is fn
    assert supplier(sources, ("middlewares", 0, "mode")) is None  # the list was replaced
    assert supplier(sources, ("debug", "allow", 1)) is None  # a scalar replaced the mapping
    assert supplier(sources, ("debug",)) is fn
    assert supplier([fn, layer], ("debug", "allow", 1)) is layer  # a mapping replaces a scalar
    assert supplier([fn, layer], ("middlewares", 0, "mode")) is layer
    assert supplier(sources, ("nothing",)) is None


def test_a_problem_is_placed_in_the_file_whose_list_the_merge_kept() -> None:
    # The function file replaced the layer's middleware list: a problem about the merged first
    # middleware belongs to the function file, even at a path only the layer's item had.
    from sor.config.merge import Merged
    from sor.config.yaml_source import parse

    layer = parse("version: 1\nmiddlewares:\n  - {name: a, path: ./tools/a}\n", "layer.yml")
    function = parse("version: 1\nmiddlewares:\n  - {name: b}\n", "fn.yml")
    merged = Merged([layer, function])
    assert merged.data["middlewares"] == [{"name": "b"}]
    problem = merged.problem(("middlewares", 0, "path"), "no such executable")
    assert problem.file == "fn.yml"
    assert (problem.line, problem.col) == (3, 5)
    assert not hasattr(merged, "origin") and not hasattr(merged, "source_of")


def test_mappings_are_compiled_when_the_config_is_built(
    dirs: tuple[Path, Path, dict[str, str]],
) -> None:
    fn, _, env = dirs
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.h, signature: cloudevent}\ncloudevents:\n"
        "  mappings:\n    - name: orders\n      match: {$.source: shop}\n"
        "      attributes: {id: $.id, source: $.source, type: order}\n"
    )
    compiled = load(env, fn).cloudevents.compiled
    assert [m.kind for m in compiled] == ["orders"]
    assert compiled[0].matches({"source": "shop", "id": "1"})
