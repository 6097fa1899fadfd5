"""The deployment examples, the pre-commit hook and the editor docs hold together.

The Serverless and SAM files are parsed (SAM's `!Ref`/`!GetAtt` tags included) and checked against
the files they point at; every example sor.yml is validated through `sor validate`; the example
functions run with the example middleware layer through `sor local invoke`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS = ROOT / "examples" / "serverless"
SAM = ROOT / "examples" / "sam"
CONFIGS = sorted((ROOT / "examples").glob("**/sor.yml"))


class Tagged:
    """A CloudFormation short-form function such as `!Ref X`, kept as tag and value."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"{self.tag} {self.value!r}"


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that accepts CloudFormation's tags instead of refusing the whole template."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return Tagged("!" + suffix, value)


CloudFormationLoader.add_multi_constructor("!", _tagged)


def load(path: Path) -> Any:
    with path.open() as f:
        # A SafeLoader subclass: tags become Tagged values, never arbitrary objects.
        return yaml.load(f, Loader=CloudFormationLoader)


def sor(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sor", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=60,
    )


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOR_", "AWS_", "LAMBDA_"))
        and k not in ("SLSMIDDLEWARES", "_HANDLER", "PYTHONPATH")
    }


def handler_exists(folder: Path, handler: str) -> bool:
    module, _, function = handler.rpartition(".")
    for suffix, pattern in ((".py", rf"^def {function}\("), (".js", rf"^exports\.{function} =")):
        path = folder / (module + suffix)
        if path.is_file() and re.search(pattern, path.read_text(), re.MULTILINE):
            return True
    return False


# -- sor.yml files -----------------------------------------------------------------------------


def test_examples_have_configs() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in CONFIGS}
    assert {
        "examples/serverless/layer/sor.yml",
        "examples/serverless/functions/python/sor.yml",
        "examples/serverless/functions/node/sor.yml",
    } <= names


def test_every_example_config_validates() -> None:
    done = sor("validate", *map(str, CONFIGS), env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr


def test_validate_would_catch_a_broken_example(tmp_path: Path) -> None:
    broken = tmp_path / "sor.yml"
    text = (SERVERLESS / "layer" / "sor.yml").read_text().replace("on_error: fail", "on_error: x")
    broken.write_text(text)
    done = sor("validate", str(broken), env=clean_env())
    assert done.returncode == 1
    assert "on_error" in done.stdout + done.stderr


def test_layer_middlewares_are_executable() -> None:
    config = yaml.safe_load((SERVERLESS / "layer" / "sor.yml").read_text())
    for entry in config["middlewares"]:
        path = SERVERLESS / "layer" / "middlewares" / entry["name"]
        assert path.is_file() and os.access(path, os.X_OK), path


# -- Serverless Framework ----------------------------------------------------------------------


def test_serverless_file() -> None:
    doc = load(SERVERLESS / "serverless.yml")
    provider = doc["provider"]
    assert provider["name"] == "aws"
    # the seed's way of choosing middlewares, naming one the layer provides
    names = provider["environment"]["SLSMIDDLEWARES"].split(",")
    assert names and all((SERVERLESS / "layer" / "middlewares" / n).is_file() for n in names)
    assert provider["environment"]["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/sor-wrapper"
    layers = doc["layers"]
    assert (SERVERLESS / layers["middlewares"]["path"] / "sor.yml").is_file()
    assert layers["sor"]["package"]["artifact"].endswith(".zip")
    assert provider["architecture"] in layers["sor"]["compatibleArchitectures"]
    # Serverless names a layer `x` LambdaLayer `XLambdaLayer` in CloudFormation
    logical = {f"{name[0].upper()}{name[1:]}LambdaLayer" for name in layers}
    # the recommended route: every function on the managed Python runtime, Node.js in the layer
    assert provider["runtime"].startswith("python3.")
    assert layers["sor"]["compatibleRuntimes"] == [provider["runtime"]]
    languages = set()
    for name, function in doc["functions"].items():
        refs = {layer["Ref"] for layer in function["layers"] if isinstance(layer, dict)}
        assert refs == logical, name
        assert "runtime" not in function, name
        # each function is zipped from its own folder: build/X.zip holds functions/X
        artifact = Path(function["package"]["artifact"])
        assert artifact.parent == Path("build") and artifact.suffix == ".zip", name
        folder = SERVERLESS / "functions" / artifact.stem
        assert handler_exists(folder, function["handler"]), name
        languages.add(load(folder / "sor.yml")["runtime"]["language"])
    assert languages == {"python", "node"}


# -- AWS SAM -----------------------------------------------------------------------------------


def test_sam_template() -> None:
    doc = load(SAM / "template.yaml")
    assert doc["Transform"] == "AWS::Serverless-2016-10-31"
    resources = doc["Resources"]
    global_layers = doc["Globals"]["Function"]["Layers"]
    assert all(isinstance(ref, Tagged) and ref.tag == "!Ref" for ref in global_layers)
    layer_ids = {ref.value for ref in global_layers}
    assert {resources[i]["Type"] for i in layer_ids} == {"AWS::Serverless::LayerVersion"}
    middleware_layers = [
        resources[i]["Properties"]["ContentUri"]
        for i in layer_ids
        if not resources[i]["Properties"]["ContentUri"].endswith(".zip")
    ]
    assert [(SAM / uri / "sor.yml").is_file() for uri in middleware_layers] == [True]
    wrapper = doc["Globals"]["Function"]["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"]
    assert wrapper == "/opt/sor-wrapper"
    functions = {k: v["Properties"] for k, v in resources.items() if v["Type"].endswith("Function")}
    # the recommended route: every function on the managed Python runtime, Node.js in the layer
    runtime = doc["Globals"]["Function"]["Runtime"]
    assert runtime.startswith("python3.")
    languages = set()
    for name, props in functions.items():
        assert "Runtime" not in props and "Layers" not in props, name
        code = SAM / props["CodeUri"]
        assert handler_exists(code, props["Handler"]), name
        languages.add(load(code / "sor.yml")["runtime"]["language"])
    assert languages == {"python", "node"}
    outputs = {o["Value"].tag for o in doc["Outputs"].values()}
    assert outputs == {"!GetAtt"}


# -- the example functions run with the example layer ------------------------------------------


@pytest.mark.parametrize("language", ["python", "node"])
def test_example_function_runs_with_the_middleware_layer(language: str) -> None:
    args = ["local", "invoke", str(SERVERLESS / "functions" / language), "--event", "-"]
    args += ["--env", f"SOR_LAYER_DIR={SERVERLESS / 'layer'}"]
    done = sor(*args, env=clean_env(), stdin=json.dumps({"name": "example"}))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["result"]["message"].startswith("hello example from "), answer
    assert answer["requestId"] == answer["result"]["requestId"]


def test_slsmiddlewares_can_turn_the_layer_middlewares_off() -> None:
    args = ["local", "invoke", str(SERVERLESS / "functions" / "python"), "--event", "-"]
    args += ["--env", f"SOR_LAYER_DIR={SERVERLESS / 'layer'}", "--env", "SLSMIDDLEWARES="]
    done = sor(*args, env=clean_env(), stdin="{}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["message"].startswith("hello world from Python")


# -- pre-commit and editors --------------------------------------------------------------------


def test_pre_commit_hook() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["sor-validate"]
    assert hook["language"] == "python" and hook["entry"] == "sor validate"
    files = re.compile(hook["files"])
    for name in ("sor.yml", "sor.yaml", "app/sor.yml", "a/b/sor.yaml"):
        assert files.search(name), name
    for name in ("xsor.yml", "sor.yml.bak", "sor.json", "app/mysor.yaml"):
        assert not files.search(name), name


def test_editor_docs_name_the_schema() -> None:
    schema_id = json.loads((ROOT / "schema" / "sor.schema.json").read_text())["$id"]
    text = (ROOT / "docs" / "editors.md").read_text()
    assert f"# yaml-language-server: $schema={schema_id}" in text
    assert '"yaml.schemas"' in text
    for config in sorted(SERVERLESS.glob("**/sor.yml")):
        first = config.read_text().splitlines()[0]
        assert first == f"# yaml-language-server: $schema={schema_id}", config
