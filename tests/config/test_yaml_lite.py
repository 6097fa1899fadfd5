"""sor.config.yaml_lite reads plain sor.yml files exactly as PyYAML does, or declines.

Every text below is read by both readers: where the plain reader answers, its data (types
included), positions and problems must be PyYAML's (sor.config.yaml_source); where it declines,
PyYAML reads the file as before. It must take the usual files (every sor.yml shipped here),
or it buys nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.bad_configs import BAD

from sor.config import yaml_lite, yaml_source

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in REPO.glob("**/sor.yml") if not {".venv", "node_modules"} & set(p.parts))

# Plain files the reader must take, and what makes it decline (each must still agree).
EDGES = [
    "version: 1\nruntime:\n  handler: app.handler\n",
    "version: 1 # the version\nruntime: # where\n  handler: app.handler  # comment\n",
    "a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: ~\ng: null\nh: NULL\n",
    "a: 0\nb: -1\nc: +5\nd: 1.5\ne: -0.25\nf: 00.5\ng: 300ms\nh: 1.5s\ni: 2m\nj: 0b\n",
    "a: 07\nb: 0x1f\nc: 1_000\nd: 1:30\ne: 1e3\nf: .5\ng: .inf\nh: 2001-12-14\n",
    "a: 'single'\nb: \"double\"\nc: \"with \\\\ escape\"\nd: 'it''s'\n",
    "a: ./bin/x\nb: /opt/x\nc: ../up\nd: $LATEST\ne: _x\nf: arn:aws:lambda:x\n",
    "a: it's\nb: a{b}\nc: x,y\nd: hello world\ne: a#b\nf: a: b\ng: =\n",
    "hooks: [before, after]\nb: []\nc: [ a , b ]\nd: [a, ]\ne: [a: b]\nf: ['a']\n",
    "m:\n- a\n- b\nn: 1\n",
    "middlewares:\n  - name: auth\n    path: ./auth\n    hooks: [before]\n  - name: log\n",
    "l:\n  - - a\n    - b\n  - c\n",
    "l:\n  -\n    a: 1\n",
    "a:\nb: 1\n",
    "a: 1\na: 2\n",
    "a: 1\n  b: 2\n",
    "a: text\n  continued\n",
    "a: |\n  block\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "<<: {a: 1}\n",
    "---\na: 1\n",
    "a: {b: 1}\n",
    "- a\n- b\n",
    "just text\n",
    "",
    "# only a comment\n",
    "a:\tb\n",
    "a: b\r\nc: d\r\n",
    "\ufeffa: 1\n",
    "  a: 1\n",
    "a: " + "9" * 30 + "\n",
    "on: 1\nyes: 2\n200: x\n",
    "a:b\n",
    "a: b\n" * 3,
    "k:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)) + "  " * 40 + "v: 1\n",
    # found by a differential fuzzer against PyYAML: a hex number of letters only, line breaks
    # PyYAML sees inside a comment (NEL, U+2028), a control character in a comment, a long key
    "a: 0xff\nb: 0xa\n",
    "a: 1\n#\x85b: 2\n",
    "a: 1\n# x\u2028b: 2\n",
    "a: 1\n# \x00\n",
    "k" * 1025 + ": 1\n",
]


# Each line alone too, so that one doubtful line does not hide its neighbours from the check.
LINES = sorted({line + "\n" for text in EDGES for line in text.splitlines() if ": " in line})


def typed(value: Any) -> Any:
    """The value with every scalar's type beside it: 1, 1.0 and True are not equal here."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def agree(text: str) -> bool:
    """True when the plain reader took ``text``; fails when it read it otherwise than PyYAML."""
    lite = yaml_lite.parse(text, "sor.yml")
    if lite is None:
        return False
    full = yaml_source.parse(text, "sor.yml")
    assert full.problems == [] and lite.problems == []
    assert typed(lite.data) == typed(full.data)
    assert lite.positions == full.positions
    assert lite.key_positions == full.key_positions
    return True


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_sor_yml_is_read_without_pyyaml_and_alike(path: Path) -> None:
    assert agree(path.read_text())


def test_edge_cases_agree_or_are_declined() -> None:
    taken = [text for text in EDGES if agree(text)]
    declined = [text for text in EDGES if text not in taken]
    # Both kinds are exercised: plain files taken, and everything doubtful left to PyYAML.
    assert EDGES[0] in taken and "m:\n- a\n- b\nn: 1\n" in taken
    assert "a: 1\na: 2\n" in declined and "a: &x 1\nb: *x\n" in declined
    assert EDGES[-5:] == [text for text in EDGES[-5:] if text in declined]
    assert "a: 07\nb: 0x1f\nc: 1_000\nd: 1:30\ne: 1e3\nf: .5\ng: .inf\nh: 2001-12-14\n" in declined


@pytest.mark.parametrize("case", BAD, ids=[case[0] for case in BAD])
def test_the_bad_config_corpus_agrees_or_is_declined(case: tuple[str, str, Any]) -> None:
    agree(case[1])


@pytest.mark.parametrize("line", LINES)
def test_each_line_alone_agrees_or_is_declined(line: str) -> None:
    agree(line)


def test_most_single_lines_are_taken() -> None:
    taken = [line for line in LINES if agree(line)]
    for line in ("c: [ a , b ]\n", "hooks: [before, after]\n", "g: 300ms\n", "d: 1.5\n"):
        assert line in taken
    assert len(taken) > len(LINES) // 2


@pytest.mark.parametrize(
    "line", ["a: 07", "a: 0x1f", "a: 1_000", "a: 1:30", "a: 1e3", "a: .5", "a: 2001-12-14"]
)
def test_numbers_in_other_notations_are_left_to_pyyaml(line: str) -> None:
    assert yaml_lite.parse(line + "\n", "sor.yml") is None
