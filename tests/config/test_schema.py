"""The schema file, `sor schema`, and the rules beyond the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sor.cli import main
from sor.config.rules import MAX_SECONDS, duration_seconds, handler_problem, name_problem
from sor.config.schema import check, schema_document
from sor.config.yaml_source import parse
from sor.resources import data_path

REPO = Path(__file__).resolve().parents[2]


def _objects(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{where}/{i}")


def test_schema_is_draft_2020_12_with_an_id() -> None:
    schema = json.loads(data_path("schema", "sor.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://sor.dev/schema/sor-v1.json"
    assert schema == schema_document()


def test_every_object_is_closed_and_every_key_described() -> None:
    schema = schema_document()
    found = list(_objects(schema))
    assert len(found) >= 8
    for where, node in found:
        if "properties" in node:
            assert node.get("additionalProperties") is False, where
            for key, sub in node["properties"].items():
                assert sub.get("description"), f"{where}/properties/{key}"


def test_sor_schema_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == (REPO / "schema" / "sor.schema.json").read_text()
    assert json.loads(printed)["title"].startswith("sor.yml")


def test_importing_the_loader_does_not_import_jsonschema() -> None:
    code = "import sys, sor.config.loader; print('jsonschema' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0.5, 0.5), (2, 2.0), ("250ms", 0.25), ("2s", 2.0), ("1.5s", 1.5), ("1m", 60.0), ("0s", 0.0)],
)
def test_durations(value: Any, seconds: float) -> None:
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["fast", "-5ms", "5 s", "1h", "", -1, 0, True, None, [1]])
def test_not_durations(value: Any) -> None:
    assert duration_seconds(value) is None


@pytest.mark.parametrize("name", ["auth", "log-event", "a.b", "v2_audit"])
def test_safe_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "..", "a..b", ".hidden", " auth", "a\nb"])
def test_unsafe_names(name: str) -> None:
    assert name_problem(name) is not None


@pytest.mark.parametrize(
    ("language", "handler"),
    [
        ("python", "handler.hello"),
        ("python", "src/handler.hello"),
        ("python", "pkg.module.fn"),
        ("node", "index.handler"),
        ("node", "src/app.handler"),
        ("node", "dir/my-file.obj.method"),
        ("exec", "anything at all"),
    ],
)
def test_good_handlers(language: str, handler: str) -> None:
    assert handler_problem(language, handler) is None


@pytest.mark.parametrize(
    ("language", "handler"),
    [
        ("python", "hello"),
        ("python", "my-mod.fn"),
        ("python", "/abs/mod.fn"),
        ("python", "../mod.fn"),
        ("python", "a/../../mod.fn"),
        ("node", "index"),
        ("node", "index."),
        ("node", ".index.handler"),
    ],
)
def test_bad_handlers(language: str, handler: str) -> None:
    assert handler_problem(language, handler) is not None


def test_a_valid_file_has_no_problems() -> None:
    text = (REPO / "config.example.yml").read_text()
    assert check(parse(text, "config.example.yml")) == []


def test_longest_possible_timeout_is_accepted() -> None:
    text = f"version: 1\ntimeouts: {{middleware: {MAX_SECONDS:g}}}\n"
    assert check(parse(text, "f")) == []
    text = "version: 1\ntimeouts: {middleware: 15m}\n"
    assert check(parse(text, "f")) == []
    text = "version: 1\ntimeouts: {middleware: 15.01m}\n"
    assert len(check(parse(text, "f"))) == 1


def test_schema_and_rule_on_the_same_place_report_once() -> None:
    problems = check(parse("version: 1\nmiddlewares: [{name: ../x}]\n", "f"))
    assert [(p.path, "'..'" in p.message or "'/'" in p.message) for p in problems] == [
        ("middlewares[0].name", True)
    ]


def test_a_multi_key_required_reports_each_missing_key_once() -> None:
    from sor.config.schema import _translate

    validator = Draft202012Validator({"type": "object", "required": ["a", "b", "c", "d"]})
    source = parse("b: 1\n", "f.yml")
    messages = [
        p.message for e in validator.iter_errors(source.data) for p in _translate(e, source)
    ]
    assert sorted(messages) == [
        "missing required key 'a'",
        "missing required key 'c'",
        "missing required key 'd'",
    ]


def test_a_pattern_without_description_is_a_phrase_not_the_expression() -> None:
    from sor.config.schema import _translate

    validator = Draft202012Validator({"properties": {"x": {"pattern": "^[a-z]+$"}}})
    source = parse("x: '42'\n", "f.yml")
    (message,) = [
        p.message for e in validator.iter_errors(source.data) for p in _translate(e, source)
    ]
    assert message == "'42' does not have the form expected here"


@pytest.mark.parametrize("quick", [True, False])
def test_a_value_nested_too_deeply_is_a_problem_at_its_key(quick: bool) -> None:
    deep = "[" * 300 + "]" * 300
    text = f"version: 1\nmiddlewares:\n  - name: m\n    hooks: [{deep}, {deep}]\n"
    problems = check(parse(text, "f"), quick=quick)
    assert [(p.path, p.line) for p in problems] == [("middlewares[0].hooks", 4)]
    assert "nested too deeply" in problems[0].message
