"""sor.values: the value classes of the start-up path behave as the dataclasses they replace."""

from __future__ import annotations

from typing import ClassVar

import pytest

from sor.config.model import CloudEventsSettings, Config, Middleware, RuntimeSettings, Timeouts
from sor.errors import Problem
from sor.values import as_dict, field, frozen, mutable


@frozen
class Point:
    x: int
    y: int = 2
    tags: tuple[str, ...] = field(default_factory=tuple)
    note: str = field(default="", compare=False)


@mutable
class Box:
    items: list[int] = field(default_factory=list)
    label: str = "box"


def test_arguments_by_position_name_and_default() -> None:
    assert (Point(1).x, Point(1).y, Point(1).tags) == (1, 2, ())
    assert Point(1, 5).y == 5
    assert Point(y=7, x=3) == Point(3, 7)
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected argument 'z'"):
        Point(1, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="two values for 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 4 arguments"):
        Point(1, 2, (), "", 5)  # type: ignore[call-arg]


def test_frozen_values_cannot_change_and_hash_by_their_compared_fields() -> None:
    point = Point(1)
    with pytest.raises(AttributeError, match="frozen"):
        point.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del point.x  # type: ignore[misc]
    assert Point(1, note="a") == Point(1, note="b")  # left out of equality
    assert hash(Point(1, note="a")) == hash(Point(1, note="b"))
    assert Point(1) != Point(2)
    assert Point(1) != (1, 2)
    assert repr(Point(1, tags=("t",))) == "Point(x=1, y=2, tags=('t',))"


def test_mutable_values_change_are_unhashable_and_get_their_own_defaults() -> None:
    a, b = Box(), Box()
    a.items.append(1)
    assert b.items == []  # a factory per construction, never one shared list
    a.label = "other"
    assert a == Box([1], "other")
    with pytest.raises(TypeError):
        hash(a)


def test_the_config_model_keeps_its_defaults_equality_and_post_init() -> None:
    assert Config() == Config()
    assert Config().runtime == RuntimeSettings(language="python")
    assert Config().timeouts == Timeouts(grace=0.3)
    assert Config(runtime=RuntimeSettings(handler="a.b")) != Config()
    assert {Config(): 1}[Config()] == 1
    with pytest.raises(AttributeError):
        Config().version = 2  # type: ignore[misc]
    assert Middleware(name="m", path=__file__).hooks == ("before", "after", "error")  # type: ignore[arg-type]
    assert CloudEventsSettings().compiled == ()


def test_as_dict_lists_every_field() -> None:
    problem = Problem("sor.yml", 3, 1, "runtime", "bad")
    assert as_dict(problem) == {
        "file": "sor.yml",
        "line": 3,
        "col": 1,
        "path": "runtime",
        "message": "bad",
    }
    assert str(problem) == "sor.yml:3:1: runtime: bad"


def test_what_dataclasses_would_do_otherwise_is_refused_or_kept_apart() -> None:
    @frozen
    class Base:
        a: int

    with pytest.raises(TypeError, match="cannot extend"):

        @frozen
        class Sub(Base):  # dataclasses would add Base's fields: this would lose them
            b: int

    with pytest.raises(ValueError, match="mutable default"):

        @mutable
        class Shared:
            items: list[int] = []  # shared by every instance: the point of the test

    @frozen
    class WithClassVar:
        limit: ClassVar[int] = 3
        a: int

    assert WithClassVar(1).a == 1 and WithClassVar.limit == 3
    with pytest.raises(TypeError):
        WithClassVar(1, 2)  # type: ignore[call-arg]
