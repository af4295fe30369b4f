"""A cheaper ``__init__`` for the frozen, slotted dataclasses built on every operation.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
(it must get past the class's own ``__setattr__``, which refuses), a slow call on CPython:
``ObjectAttrs``'s 14 fields cost about 4 µs, built on every read and write of every backend.

``fast_init`` gives such a class an ``__init__`` that stores the fields as plain attribute
stores on a private twin class of the identical layout (the same slots in the same order,
no ``__dict__``), then turns the instance into the real class by assigning ``__class__``,
which CPython allows between classes of identical layout. Invariants:

* The instance a caller gets is exactly what the dataclass's ``__init__`` would have made:
  the same type, the same field values, frozen, equal and hashed alike (tests/unit/test_frozen.py
  compares the two). Positional and keyword use, defaults, default factories and
  ``__post_init__`` behave as the dataclass's: the signature is generated from its fields.
* Only the class itself takes the twin route; a subclass (whose layout may differ) sets
  fields as the dataclass does. Any interpreter other than CPython with the GIL keeps the
  dataclass's own ``__init__`` (the free-threaded build may pause every thread to change an
  object's class; other implementations lay objects out differently).
* The instance is a twin only inside ``__init__``, before anyone else can see it.
"""

from __future__ import annotations

import dataclasses
import sys
import sysconfig
from typing import Any, TypeVar

__all__ = ["fast_init", "replace"]

T = TypeVar("T")

ENABLED = sys.implementation.name == "cpython" and not sysconfig.get_config_var("Py_GIL_DISABLED")
"""Whether ``fast_init`` replaces ``__init__`` on this interpreter."""


class _Factory:
    """A default factory's placeholder in the signature, shown as the dataclass shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_MISSING = _Factory()
_COPY: dict[type, Any] = {}
"""Per fast_init class without ``__post_init__``: its copy-with-changes, for ``replace``."""


def replace(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace(obj, **changes)``: the same new instance, without its walk over
    the fields per call, for a class that ``fast_init`` gave a copy (see ``fast_init``)."""
    copy = _COPY.get(type(obj))
    if copy is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    return copy(obj, changes)  # type: ignore[no-any-return]


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` the faster ``__init__`` (see the module docs)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    slots = getattr(cls, "__slots__", None)
    if (
        not dataclasses.is_dataclass(cls)
        or not cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        or tuple(f.name for f in params) != slots
        or any(not f.init or f.kw_only for f in params)
    ):
        raise TypeError(f"fast_init needs a frozen, slotted dataclass with plain fields, not {cls!r}")
    if not ENABLED:
        return cls
    twin = type(f"_{cls.__name__}Draft", (), {"__slots__": slots, "__module__": cls.__module__})
    env: dict[str, Any] = {"_cls": cls, "_twin": twin, "_MISSING": _MISSING, "_setattr": object.__setattr__}
    args, fill, store = [], [], []
    for f in params:
        if f.default is not dataclasses.MISSING:
            env[f"_d_{f.name}"] = f.default
            args.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_f_{f.name}"] = f.default_factory
            args.append(f"{f.name}=_MISSING")
            fill.append(f"    if {f.name} is _MISSING: {f.name} = _f_{f.name}()")
        else:
            args.append(f.name)
        store.append(f"        self.{f.name} = {f.name}")
    slow = [f"        _setattr(self, {f.name!r}, {f.name})" for f in params]
    post = ["    self.__post_init__()"] if hasattr(cls, "__post_init__") else []
    source = "\n".join(
        [
            f"def __init__(self, {', '.join(args)}):",
            *fill,
            "    if type(self) is _cls:",
            "        _setattr(self, '__class__', _twin)",
            *store,
            "        self.__class__ = _cls",
            "    else:",
            *slow,
            *post,
        ]
    )
    if not post:
        # replace(): every field copied as it is, the changed ones set, on the twin. With no
        # __post_init__ to run again, that is what dataclasses.replace's __init__ call makes.
        env["_fields"] = frozenset(slots)
        env["_dc_replace"] = dataclasses.replace
        source += "\n".join(
            [
                "",
                "def _copy(old, changes):",
                "    new = _twin()",
                *(f"    new.{f.name} = old.{f.name}" for f in params),
                "    for name, value in changes.items():",
                "        if name not in _fields:",
                "            return _dc_replace(old, **changes)  # raises as dataclasses.replace does",
                "        setattr(new, name, value)",
                "    new.__class__ = _cls",
                "    return new",
            ]
        )
    exec(source, env)  # generated from the dataclass's own fields, as dataclasses does
    if not post:
        _COPY[cls] = env["_copy"]
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__wrapped__ = cls.__init__  # the dataclass's own: inspect.signature shows it, tests compare
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
