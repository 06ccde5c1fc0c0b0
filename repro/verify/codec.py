"""The field-driven JSON codec: a frozen dataclass to plain JSON values and back, checked against its fields' types
(stdlib only). The probe's facts (repro/verify/facts.py) and the report's trial records (repro/report/records.py)
travel through it, so a new fact or a new per-trial column is one field, with no line of JSON code.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import types
import typing
from typing import Any, Callable, Mapping, Sequence, TypeVar

from repro.errors import MachineOutputError


class CodecError(MachineOutputError):
    """JSON that does not fit the dataclass it is read as (the caller says whose output it was)."""


class Row:
    """Marks a dataclass carried as a JSON array in field order (many of them: compact)."""


_T = TypeVar("_T")


_PLAIN = frozenset({str, int, float, bool, type(None)})  # exact types: a str-valued enum is not plain


def encode(value: object) -> object:
    """A fact as plain JSON values: dataclass -> object (a Row -> array), enum -> its value, tuple -> array,
    mapping -> object."""
    kind: Any = type(value)
    if kind in _PLAIN:
        return value
    if kind is tuple or kind is list:
        return [v if type(v) in _PLAIN else encode(v) for v in value]  # type: ignore[attr-defined]
    names = _field_names(kind)
    if names is not None:
        items = [encode(getattr(value, name)) for name in names]
        return items if isinstance(value, Row) else dict(zip(names, items))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    return value


@functools.cache
def _field_names(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names, once per class (None: not a dataclass)."""
    if not dataclasses.is_dataclass(kind):
        return None
    return tuple(f.name for f in dataclasses.fields(kind))


def decode(cls: type[_T], obj: object) -> _T:
    """The inverse of :func:`encode` for the dataclass ``cls``; CodecError when ``obj`` does not fit. A
    decoder compiled once per type does the work; when it refuses, the descriptive pass below says where."""
    try:
        return typing.cast(_T, _decoder(typing.cast(Any, cls))(obj))
    except (_Mismatch, TypeError, ValueError):
        pass
    return typing.cast(_T, _decode(cls, obj, cls.__name__))  # raises CodecError, naming the place


class _Mismatch(CodecError):
    """A compiled decoder's refusal, never raised out of this module (the descriptive pass makes the message)."""


def _check(kinds: tuple[type, ...]) -> Callable[[object], object]:
    """Exactly these JSON types (stricter than the descriptive pass, which then decides: a bool is no int)."""
    exact = frozenset(kinds)

    def check(obj: object) -> object:
        if type(obj) not in exact:
            raise _Mismatch
        return obj
    return check


@functools.cache
def _decoder(hint: Any) -> Callable[[object], object]:
    """``hint``'s decoder, made once: the same rules as :func:`_decode`, without tracking the place."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [o for o in typing.get_args(hint) if o is not type(None)]  # only `X | None` is used
        some = _decoder(inner)
        return lambda obj: None if obj is None else some(obj)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])

            def many(obj: object) -> object:
                if type(obj) is not list:
                    raise _Mismatch
                return tuple([item(v) for v in obj])
            return many
        items = tuple(_decoder(a) for a in args)

        def fixed(obj: object) -> object:
            if type(obj) is not list or len(obj) != len(items):
                raise _Mismatch
            return tuple([d(v) for d, v in zip(items, obj)])
        return fixed
    if origin in (dict, collections.abc.Mapping):
        value, is_dict = _decoder(typing.get_args(hint)[1]), _check((dict,))
        return lambda obj: {k: value(v) for k, v in is_dict(obj).items()}  # type: ignore[attr-defined]
    if hint is object:
        return lambda obj: obj
    if hint is float:
        def number(obj: object) -> object:
            if type(obj) is float:
                return obj
            if type(obj) is not int:
                raise _Mismatch
            return float(obj)  # type: ignore[arg-type]
        return number
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if hint in (str, int, bool):
        return _check((hint,))
    raise TypeError(f"no codec for {hint!r}")


def _dataclass_decoder(cls: type) -> Callable[[object], object]:
    hints = _hints(cls)
    fields = [(f.name, _no_default(f)) for f in dataclasses.fields(cls)]
    is_list, is_dict = _check((list,)), _check((dict,))

    def build(obj: object) -> object:
        if issubclass(cls, Row):
            values = is_list(obj)
            if len(values) != len(fields):  # type: ignore[arg-type]
                raise _Mismatch
            return cls(*(_decoder(hints[name])(v) for (name, _), v in zip(fields, values)))  # type: ignore[call-overload]
        data = is_dict(obj)
        kwargs = {}
        for name, required in fields:
            if name in data:  # type: ignore[operator]
                kwargs[name] = _decoder(hints[name])(data[name])  # type: ignore[index]
            elif required:
                raise _Mismatch
        return cls(**kwargs)
    return build


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, obj: object, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if obj is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]  # only `X | None` is used
        return _decode(inner, obj, where)
    if origin is tuple:
        args, values = typing.get_args(hint), _expect(list, obj, where)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(values))
        if len(values) != len(args):  # tuple[X, Y]: a pair
            raise CodecError(f"{where}: {len(values)} values for a tuple of {len(args)}")
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, values)))
    if origin in (dict, collections.abc.Mapping):
        _, value_hint = typing.get_args(hint)  # keys are strings, as JSON's
        return {k: _decode(value_hint, v, f"{where}.{k}") for k, v in _expect(dict, obj, where).items()}
    if hint is object:  # any JSON value, carried as it is (a trial's scenario)
        return obj
    if hint is float:
        return float(_expect((int, float), obj, where))  # type: ignore[arg-type]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, obj, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(obj)
        except ValueError:
            raise CodecError(f"{where}: unknown {hint.__name__} {obj!r}") from None
    if hint in (str, int, bool):
        return _expect(hint, obj, where)
    raise TypeError(f"no codec for {hint!r} at {where}")  # a fact of a type the codec does not know


def _decode_dataclass(cls: type, obj: object, where: str) -> object:
    fields = dataclasses.fields(cls)
    hints = _hints(cls)
    if issubclass(cls, Row):
        values = _expect(list, obj, where)
        if len(values) != len(fields):
            raise CodecError(f"{where}: {len(values)} values for {len(fields)} fields")
        pairs: Sequence[tuple[dataclasses.Field[Any], object]] = list(zip(fields, values))
    else:
        data = _expect(dict, obj, where)
        missing = [f.name for f in fields if f.name not in data and _no_default(f)]
        if missing:
            raise CodecError(f"{where}: missing {', '.join(missing)}")
        pairs = [(f, data[f.name]) for f in fields if f.name in data]
    kwargs = {f.name: _decode(hints[f.name], v, f"{where}.{f.name}") for f, v in pairs}
    return cls(**kwargs)


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _expect(kind: type[_T], obj: object, where: str) -> _T:
    # bool is an int in Python, not in the facts
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(obj, kind) or (int in kinds and isinstance(obj, bool)):
        raise CodecError(f"{where}: expected {' or '.join(k.__name__ for k in kinds)}, got {obj!r}"[:200])
    return obj
