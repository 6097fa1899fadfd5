"""Which `node` a Node.js function runs on: the layer's, then PATH's; a clear error without one."""

from __future__ import annotations

from pathlib import Path

import pytest

from sor.config.model import RuntimeSettings
from sor.errors import ConfigError
from sor.runtime.language import runtime_command
from sor.runtime.node_binary import node_binary


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_layers_node_comes_before_path(tmp_path: Path) -> None:
    layer_node = executable(tmp_path / "opt" / "node" / "bin" / "node")
    on_path = executable(tmp_path / "bin" / "node")
    env = {
        "SOR_LAYER_DIR": str(tmp_path / "opt"),
        "PATH": f"{tmp_path / 'nothing'}:{on_path.parent}",
    }
    assert node_binary(env) == str(layer_node)
    layer_node.unlink()
    assert node_binary(env) == str(on_path)


def test_runtime_command_wins_over_both(tmp_path: Path) -> None:
    executable(tmp_path / "opt" / "node" / "bin" / "node")
    env = {"SOR_LAYER_DIR": str(tmp_path / "opt"), "PATH": ""}
    settings = RuntimeSettings(language="node", handler="h.f", command=("/my/node", "--x"))
    argv = runtime_command(settings, env)
    assert argv[:2] == ["/my/node", "--x"] and argv[2].endswith("sor_runtime.js")
    plain = runtime_command(RuntimeSettings(language="node", handler="h.f"), env)
    assert plain[0] == str(tmp_path / "opt" / "node" / "bin" / "node")


def test_no_node_says_to_rebuild_the_layer_with_node(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "node").write_text("not executable")
    env = {"SOR_LAYER_DIR": str(tmp_path / "opt"), "PATH": str(tmp_path / "bin")}
    with pytest.raises(ConfigError, match=r"sor package --node MAJOR") as caught:
        runtime_command(RuntimeSettings(language="node", handler="h.f"), env)
    assert str(tmp_path / "opt" / "node" / "bin" / "node") in str(caught.value)
    assert caught.value.error_type == "Sor.ConfigError"
