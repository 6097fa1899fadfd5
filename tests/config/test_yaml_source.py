"""YAML to plain data with positions: real PyYAML, real text."""

from __future__ import annotations

from sor.config.source import dotted
from sor.config.yaml_source import parse


def test_data_and_positions() -> None:
    source = parse("version: 1\nmiddlewares:\n  - name: auth\n    timeout: {before: 2s}\n", "f.yml")
    assert source.problems == []
    assert source.data == {
        "version": 1,
        "middlewares": [{"name": "auth", "timeout": {"before": "2s"}}],
    }
    assert source.positions[("version",)] == (1, 10)
    assert source.positions[("middlewares", 0)] == (3, 5)
    assert source.positions[("middlewares", 0, "name")] == (3, 11)
    assert source.positions[("middlewares", 0, "timeout", "before")] == (4, 23)
    assert source.key_positions[("middlewares", 0, "timeout")] == (4, 5)


def test_where_falls_back_to_the_nearest_ancestor() -> None:
    source = parse("runtime:\n  handler: a.b\n", "f.yml")
    assert source.where(("runtime", "language")) == (2, 3)
    assert source.where(("runtime", "handler"), key=True) == (2, 3)
    assert source.where(("nothing", "here")) == (1, 1)
    problem = source.problem(("runtime", "handler"), "bad")
    assert str(problem) == "f.yml:2:12: runtime.handler: bad"


def test_dotted_paths() -> None:
    assert dotted(("middlewares", 2, "timeout", "before")) == "middlewares[2].timeout.before"
    assert dotted(()) == ""
    assert dotted(("debug", "allow", 0)) == "debug.allow[0]"


def test_keys_stay_strings_and_timestamps_stay_text() -> None:
    source = parse("on: yes\n1: x\nwhen: 2024-01-01\n", "f.yml")
    assert source.data == {"on": True, "1": "x", "when": "2024-01-01"}


def test_duplicate_keys_are_problems_at_the_second_key() -> None:
    source = parse("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "f.yml")
    assert sorted(str(p) for p in source.problems) == [
        "f.yml:4:3: b.c: duplicate key 'c' (first at line 3, column 3)",
        "f.yml:5:1: a: duplicate key 'a' (first at line 1, column 1)",
    ]
    assert source.data == {"a": 3, "b": {"c": 2}}


def test_merge_keys_and_aliases() -> None:
    text = "base: &base {timeout: 1s, on_error: continue}\nm:\n  <<: *base\n  timeout: 2s\n"
    source = parse(text, "f.yml")
    assert source.problems == []
    assert source.data["m"] == {"timeout": "2s", "on_error": "continue"}
    assert source.positions[("m", "timeout")] == (4, 12)


def test_syntax_error_has_its_position() -> None:
    source = parse("a: [1, 2\nb: 3\n", "f.yml")
    assert source.data is None
    [problem] = source.problems
    assert (problem.line, problem.col, problem.path) == (2, 2, "")
    assert problem.message.startswith("YAML syntax error: while parsing a flow sequence")


def test_bad_character_has_its_position() -> None:
    [problem] = parse("a: 1\nb: x\x07\n", "f.yml").problems
    assert (problem.line, problem.col) == (2, 5)
    assert "'\\x07' is not allowed" in problem.message


def test_several_documents_are_a_problem() -> None:
    [problem] = parse("a: 1\n---\nb: 2\n", "f.yml").problems
    assert "expected a single document" in problem.message


def test_empty_list_and_scalar_tops() -> None:
    assert [p.message for p in parse("", "f").problems] == [
        "the file is empty: it needs at least `version: 1`"
    ]
    assert "not a list" in parse("- 1\n", "f").problems[0].message
    assert "not a single value" in parse("hello\n", "f").problems[0].message
    assert parse("  \n  [1]\n", "f").problems[0].line == 2


def test_non_scalar_key_is_a_problem() -> None:
    [problem] = parse("? [a, b]\n: 1\n", "f.yml").problems
    assert (problem.line, problem.col, problem.message) == (1, 3, "a key must be a plain string")


def test_a_number_python_cannot_read_is_a_problem_not_a_crash() -> None:
    source = parse("version: 1\ntimeouts:\n  grace: " + "9" * 5000 + "\n", "f.yml")
    assert source.data is None
    [problem] = source.problems
    assert (problem.line, problem.col, problem.path) == (3, 10, "timeouts.grace")
    assert "the value cannot be read: Exceeds the limit" in problem.message
    assert "set_int_max_str_digits" not in problem.message


def test_a_file_nested_too_deeply_is_a_problem_not_a_crash() -> None:
    deep = "version: 1\nruntime: " + "[" * 5000 + "]" * 5000 + "\n"
    source = parse(deep, "deep.yml")
    assert [(p.file, p.message) for p in source.problems] == [
        ("deep.yml", "the file is nested too deeply to read (more than 64 levels)")
    ]


BOMB = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    # 10**9 values once expanded; the parser's events never expand an alias.
    source = parse(BOMB, "bomb.yml")
    assert source.data is None
    [problem] = source.problems
    assert problem.message.startswith("the file's aliases expand to more than 100000 values")
    assert (problem.file, problem.line, problem.path) == ("bomb.yml", 6, "e")


def test_aliases_that_stay_small_are_fine() -> None:
    text = "version: 1\nx: &t {before: 1s}\nmiddlewares:\n  - {name: a, timeout: *t}\n"
    assert parse(text, "f.yml").problems == []


def test_nesting_below_the_limit_is_read() -> None:
    text = "version: 1\nx: " + "[" * 60 + "]" * 60 + "\n"
    assert parse(text, "f.yml").problems == []
