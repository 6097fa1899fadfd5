"""sor.config.schema_lite agrees with jsonschema, and the `sor run` path leaves jsonschema
unimported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.bad_configs import BAD

from sor.config import yaml_source as yamlsource
from sor.config.loader import check_file
from sor.config.schema import schema_document
from sor.config.schema_lite import unsupported_keywords, verdict

REPO = Path(__file__).resolve().parents[2]
VALID_FILES = [REPO / "config.example.yml", *sorted((REPO / "examples").glob("**/sor.yml"))]


def _corpus() -> list[tuple[str, Any]]:
    out = []
    for name, text, _ in BAD:
        data = yamlsource.parse(text, name).data
        if data is not None:  # YAML syntax errors never reach a schema
            out.append((name, data))
    for file in VALID_FILES:
        out.append((str(file.relative_to(REPO)), yamlsource.parse(file.read_text(), "f").data))
    return out


CORPUS = _corpus()


def test_the_corpus_is_the_whole_bad_config_suite_plus_examples() -> None:
    assert len(CORPUS) >= 50
    assert len(VALID_FILES) >= 4


def test_sor_schema_uses_only_supported_keywords() -> None:
    assert unsupported_keywords(schema_document()) == set()


@pytest.mark.parametrize(("name", "data"), CORPUS, ids=[n for n, _ in CORPUS])
def test_agrees_with_jsonschema_on_every_config(name: str, data: Any) -> None:
    expected = "valid" if Draft202012Validator(schema_document()).is_valid(data) else "invalid"
    assert verdict(schema_document(), data) == expected


def test_valid_examples_are_valid() -> None:
    for file in VALID_FILES:
        assert verdict(schema_document(), yamlsource.parse(file.read_text(), "f").data) == "valid"


# Keywords the mapping schema uses, and JSON's equality rules, on small schemas of their own.
SMALL: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, "1", None]),
    ({"type": ["string", "null"]}, ["a", None, 0]),
    ({"enum": [1, "a", [1]]}, [1, 1.0, True, "a", [1], [True]]),
    ({"const": False}, [False, 0, None]),
    ({"minProperties": 1, "maxProperties": 2}, [{}, {"a": 1}, {"a": 1, "b": 2, "c": 3}, []]),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, [{"ab": 1}, {"Ab": 1}, "Ab"]),
    ({"not": {"required": ["x"]}}, [{"x": 1}, {"y": 1}, 3]),
    ({"uniqueItems": True}, [[1, True], [1, 1.0], [{"a": [1]}, {"a": [1]}], [[1], [True]]]),
    (
        {"patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": False},
        [{"x-a": "s"}, {"x-a": 1}, {"y": "s"}],
    ),
    ({"oneOf": [{"type": "number"}, {"minimum": 0}]}, [1, -1, "a"]),
    ({"allOf": [{"minLength": 2}, {"maxLength": 3}]}, ["a", "ab", "abcd", 5]),
    ({"exclusiveMinimum": 0, "maximum": 5}, [0, 0.1, 5, 6, "x"]),
    ({"items": {"type": "string"}, "minItems": 1, "maxItems": 2}, [[], ["a"], ["a", 1], {}]),
    (
        {"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"maxProperties": 0}},
        [{"a": 1}, {"a": 1, "b": 2}, {}, {"c": 1}],
    ),
    ({"then": {"required": ["b"]}}, [{}]),
    ({"$defs": {"d": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/d"}}}, [{"a": 1}]),
]


@pytest.mark.parametrize(("schema", "values"), SMALL)
def test_agrees_with_jsonschema_on_each_keyword(schema: dict[str, Any], values: list[Any]) -> None:
    for value in values:
        expected = "valid" if Draft202012Validator(schema).is_valid(value) else "invalid"
        assert verdict(schema, value) == expected, value


@pytest.mark.parametrize(
    "schema",
    [
        {"dependentRequired": {"a": ["b"]}},
        {"properties": {"a": {"contains": {"type": "string"}}}},
        {"$ref": "https://example.com/other.json"},
        {"items": [{"type": "string"}]},
    ],
)
def test_unknown_keywords_are_unsupported_never_a_guess(schema: dict[str, Any]) -> None:
    assert verdict(schema, {"a": 1}) == "unsupported"


def test_quick_check_reports_the_same_problems(tmp_path: Path) -> None:
    for i, (_, text, _) in enumerate(BAD):
        file = tmp_path / f"{i}.yml"
        file.write_text(text)
        assert check_file(file, quick=True)[1] == check_file(file, quick=False)[1]


def _imported_by_load(tmp_path: Path, text: str) -> dict[str, Any]:
    (tmp_path / "sor.yml").write_text(text)
    code = (
        "import json, sys\nfrom pathlib import Path\nfrom sor.config import loader\n"
        "try:\n    loader.load({'LAMBDA_TASK_ROOT': sys.argv[1]}, Path(sys.argv[1]), quick=True)\n"
        "    ok = True\nexcept Exception:\n    ok = False\n"
        "print(json.dumps({'ok': ok, 'jsonschema': 'jsonschema' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SOR_LAYER_DIR": str(tmp_path / "no-layer")},
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_run_path_does_not_import_jsonschema_for_a_valid_config(tmp_path: Path) -> None:
    text = (REPO / "examples" / "hello" / "sor.yml").read_text()
    assert _imported_by_load(tmp_path, text) == {"ok": True, "jsonschema": False}


def test_run_path_uses_jsonschema_for_an_invalid_config(tmp_path: Path) -> None:
    assert _imported_by_load(tmp_path, "version: 1\nruntim: {}\n") == {
        "ok": False,
        "jsonschema": True,
    }
