"""Which `node` runs a Node.js function: the layer's (`sor package --node`), else one on PATH.

`runtime.command`, when set, wins over both (the caller checks it first). Lambda's Python images
have no Node.js, so on them only a layer built with `--node` can provide one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sor.errors import ConfigError

LAYER_NODE = ("node", "bin", "node")  # under $SOR_LAYER_DIR, as `sor package --node` lays it out


def node_binary(env: Mapping[str, str]) -> str:
    """The path of the `node` to run; ConfigError saying how to get one when there is none."""
    layer_dir = env.get("SOR_LAYER_DIR", "/opt")
    candidates = [os.path.join(layer_dir, *LAYER_NODE)]
    path = env.get("PATH", os.defpath)
    candidates += [os.path.join(folder or ".", "node") for folder in path.split(os.pathsep)]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError(
        f"runtime.language: node: no Node.js found (looked for {candidates[0]} and node on "
        f"PATH={path}): rebuild the sor layer with `sor package --node MAJOR` (for example "
        "--node 22), or set runtime.command to a node executable"
    )
