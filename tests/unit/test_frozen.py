"""fast_init builds exactly what the dataclass's own __init__ builds (see _frozen.py)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from aiobucket import ListEntry, ObjectAttrs, Preconditions
from aiobucket._frozen import _COPY, ENABLED, fast_init, replace
from aiobucket.providers.base import GetOptions, Part, PutOptions

WHEN = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
CASES: list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]] = [
    (ObjectAttrs, ("k", 1, "e"), {}),
    (ObjectAttrs, ("k", 4096, "e", "text/plain", "v1", "no-cache", "inline", {"a": "b"}, WHEN), {}),
    (
        ObjectAttrs,
        (),
        {
            "name": "dir/k",
            "size": 0,
            "etag": "abc",
            "metadata": {"x": "y"},
            "last_modified": WHEN,
            "crc32c": "AAAAAA==",
            "md5": "d41d8cd98f00b204e9800998ecf8427e",
            "crc32": "AAAAAA==",
            "crc64nvme": "AAAAAAAAAAA=",
            "content_encoding": "gzip",
        },
    ),
    (ListEntry, ("k",), {}),
    (ListEntry, ("p/",), {"is_prefix": True, "last_modified": WHEN, "version": "3"}),
    (PutOptions, ("text/plain",), {}),
    (PutOptions, ("a/b", "max-age=1", None, {"m": "v"}, Preconditions(not_exists=True), "gzip"), {}),
    (GetOptions, (), {}),
    (GetOptions, ("v", 5, 10), {"if_match": "e", "if_modified_since": WHEN}),
    (Part, (1, "etag", 5), {}),
    (Part, (), {"number": 2, "etag": "x", "size": 0}),
]


def reference(cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What the dataclass's own generated __init__ makes."""
    obj = object.__new__(cls)
    cls.__init__.__wrapped__(obj, *args, **kwargs)
    return obj


def test_enabled_on_this_interpreter() -> None:
    assert ENABLED  # CI runs CPython with the GIL: the fast route is the one tested
    assert ObjectAttrs.__init__ is not ObjectAttrs.__init__.__wrapped__


@pytest.mark.parametrize(("cls", "args", "kwargs"), CASES)
def test_same_instance_as_the_dataclass_init(
    cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    fast, slow = cls(*args, **kwargs), reference(cls, args, kwargs)
    assert type(fast) is cls
    assert fast == slow and repr(fast) == repr(slow)
    for f in dataclasses.fields(cls):
        a, b = getattr(fast, f.name), getattr(slow, f.name)
        assert a == b and type(a) is type(b)
        if f.default_factory is dataclasses.MISSING:
            assert a is b
    assert not hasattr(fast, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.__setattr__(dataclasses.fields(cls)[0].name, None)
    for how in (lambda x: pickle.loads(pickle.dumps(x)), copy.copy, copy.deepcopy, dataclasses.replace):
        assert outcome(how, fast) == outcome(how, slow)


def outcome(how: Any, obj: Any) -> object:
    """What ``how(obj)`` gives, or the type of what it raises (the default ObjectAttrs
    metadata, a mappingproxy, cannot be pickled, with either __init__)."""
    try:
        return how(obj)
    except Exception as exc:
        return type(exc)


def test_hashing_unchanged() -> None:
    assert hash(Part(1, "e", 2)) == hash(reference(Part, (1, "e", 2), {}))
    assert hash(GetOptions("v", 1)) == hash(reference(GetOptions, ("v", 1), {}))
    with pytest.raises(TypeError, match="unhashable"):  # a mapping field, as before
        hash(ObjectAttrs("k", 1, "e"))


def test_default_factories_run_per_instance() -> None:
    a, b = PutOptions("x"), PutOptions("x")
    assert a.metadata == {} and a.metadata is not b.metadata
    assert a.preconditions == Preconditions()


def test_signature_and_errors_as_the_dataclass() -> None:
    generated = str(inspect.signature(ObjectAttrs.__init__.__wrapped__))
    assert str(inspect.signature(ObjectAttrs)) == generated.replace("(self, ", "(")
    with pytest.raises(TypeError):
        ObjectAttrs("k", 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ObjectAttrs("k", 1, "e", nonsense=1)  # type: ignore[call-arg]


def test_post_init_runs() -> None:
    @fast_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int
        seen: list[int] = dataclasses.field(default_factory=list)

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")
            self.seen.append(self.value)

    assert Checked(3).seen == [3]
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_a_subclass_takes_the_dataclass_route() -> None:
    class Sub(ObjectAttrs):  # has a __dict__: not the twin's layout
        pass

    sub = Sub("k", 1, "e", metadata={"a": "b"})
    assert type(sub) is Sub and sub.metadata == {"a": "b"} and sub.size == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub.size = 2  # type: ignore[misc]


def test_refuses_what_it_cannot_rebuild() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    for cls in (NoSlots, NotFrozen):
        with pytest.raises(TypeError, match="frozen, slotted"):
            fast_init(cls)


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"), [c for c in CASES if c[0] in (ObjectAttrs, ListEntry, Part)]
)
def test_replace_makes_what_dataclasses_replace_makes(
    cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    obj = cls(*args, **kwargs)
    first = dataclasses.fields(cls)[0].name
    for changes in (
        {},
        {first: "renamed" if cls is not Part else 9},
        {f.name: None for f in dataclasses.fields(cls)[1:3]},
    ):
        fast, slow = replace(obj, **changes), dataclasses.replace(obj, **changes)
        assert type(fast) is cls and fast == slow and repr(fast) == repr(slow)
        for f in dataclasses.fields(cls):
            assert getattr(fast, f.name) is getattr(slow, f.name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.__setattr__(first, None)
    assert cls in _COPY  # the fast route was the one taken
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
        replace(obj, nonsense=1)


def test_replace_of_other_values_is_dataclasses_replace() -> None:
    a = Preconditions(if_match='"e"')  # has __post_init__: not copied, rebuilt
    assert replace(a, if_match='"f"') == dataclasses.replace(a, if_match='"f"') == Preconditions(if_match="f")
    assert type(a) not in _COPY

    class Sub(ObjectAttrs):
        pass

    sub = Sub("k", 1, "e")
    assert type(replace(sub, name="x")) is Sub and replace(sub, name="x").name == "x"
