"""Value classes for `sor run`'s start-up path, without the cost of `dataclasses`.

`dataclasses` imports `inspect` (with `dis`, `ast`, `tokenize`) and writes every generated
method through `exec`: ~5 ms to import and ~0.5 ms per class at every cold start
(docs/performance.md). `frozen` and `mutable` give a class the same constructor, equality, hash
and repr from its annotations, with plain functions and no code generation; mypy checks them as
dataclasses (PEP 681). A default is declared once, in the class body; `field` gives a default
factory or leaves a field out of equality and repr.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform  # typing has it from 3.11 only
else:

    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda decorated: decorated


if TYPE_CHECKING:
    T = TypeVar("T")
_MISSING = object()


class _Field:
    __slots__ = ("compare", "default", "factory")

    def __init__(self, default: Any, factory: Callable[[], Any] | None, compare: bool) -> None:
        self.default, self.factory, self.compare = default, factory, compare


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    compare: bool = True,
) -> Any:
    """A field's default made by ``default_factory`` at each construction, or a field left out of
    equality, hash and repr (``compare=False``)."""
    return _Field(default, default_factory, compare)


def _setup(cls: type[T], frozen: bool) -> type[T]:
    # What dataclasses would do otherwise and this does not, refused rather than done wrong
    # (mypy checks these classes as dataclasses, so it would not say).
    if any(hasattr(base, "__sor_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__qualname__}: a value class cannot extend another one")
    if "__annotations__" not in cls.__dict__ and "__annotate__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__}: needs `from __future__ import annotations`")
    # Not inspect.get_annotations: importing inspect is the cost this module avoids.
    annotations: dict[str, Any] = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    names = tuple(
        n for n, a in annotations.items() if not str(a).startswith(("ClassVar", "typing.ClassVar"))
    )
    specs: list[tuple[str, Any, Callable[[], Any] | None]] = []
    compared: list[str] = []
    for name in names:
        value = cls.__dict__.get(name, _MISSING)
        default, factory, compare = value, None, True
        if isinstance(value, _Field):
            default, factory, compare = value.default, value.factory, value.compare
            if default is _MISSING:
                delattr(cls, name)  # no class attribute shadows a missing value
            else:
                setattr(cls, name, default)
        if isinstance(default, (list, dict, set)):
            raise ValueError(f"{cls.__qualname__}.{name}: a mutable default is shared: use field")
        if compare:
            compared.append(name)
        specs.append((name, default, factory))
    post_init = getattr(cls, "__post_init__", None)
    qualname = cls.__qualname__
    put = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(specs):
            raise TypeError(f"{qualname}() takes {len(specs)} arguments, got {len(args)}")
        for i, (name, default, factory) in enumerate(specs):
            if i < len(args):
                value = args[i]
                if name in kwargs:
                    raise TypeError(f"{qualname}() got two values for {name!r}")
            elif name in kwargs:
                value = kwargs.pop(name)
            elif factory is not None:
                value = factory()
            elif default is not _MISSING:
                value = default
            else:
                raise TypeError(f"{qualname}() missing argument {name!r}")
            put(self, name, value)
        if kwargs:  # what is left named no field
            raise TypeError(f"{qualname}() got an unexpected argument {next(iter(kwargs))!r}")
        if post_init is not None:
            post_init(self)

    def key(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in compared)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(key(self) == key(other))

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in compared)
        return f"{qualname}({inner})"

    methods: dict[str, Any] = {"__init__": __init__, "__eq__": __eq__, "__repr__": __repr__}
    if frozen:

        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise AttributeError(f"cannot assign to field {name!r}: {qualname} is frozen")

        def __delattr__(self: Any, name: str) -> None:
            raise AttributeError(f"cannot delete field {name!r}: {qualname} is frozen")

        methods.update(
            __setattr__=__setattr__, __delattr__=__delattr__, __hash__=lambda s: hash(key(s))
        )
    else:
        methods["__hash__"] = None  # mutable and compared by value: unhashable, as a dataclass
    methods["__sor_fields__"] = names
    for name, method in methods.items():
        if name not in cls.__dict__ or name == "__hash__":  # the class's own methods win
            setattr(cls, name, method)
    return cls


def as_dict(value: object) -> dict[str, Any]:
    """The fields of a value made by `frozen` or `mutable`, by name (not recursive)."""
    return {name: getattr(value, name) for name in type(value).__sor_fields__}  # type: ignore[attr-defined]


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T]) -> type[T]:
    """A frozen value class: assigning or deleting a field raises AttributeError."""
    return _setup(cls, True)


@dataclass_transform(field_specifiers=(field,))
def mutable(cls: type[T]) -> type[T]:
    """A value class whose fields may be reassigned."""
    return _setup(cls, False)
