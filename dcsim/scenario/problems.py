"""Turn pydantic validation errors into one-line :class:`Problem` records that name the field path.

Pydantic's error locations carry internal tags where a field accepts one of several types
(``model.dict[str,any]``, ``checkpoint_interval_s.literal['auto']``, ``function-before[...]``): they are
removed here, and the errors of a field's alternatives merge into one message that says what the field
accepts (``must be a number of seconds or 'auto' (got 'soon')``). Quoted values are cut short.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from dcsim.errors import Problem, short_repr

_NAME = re.compile(r"[A-Za-z_][\w-]*")

#: What a field of each pydantic type-mismatch error kind accepts, as a phrase after "must be".
_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "dict_type": "a mapping of fields",
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
    "list_type": "a list",
}

#: Unit named by a field's suffix, for "a number of <unit>".
_UNITS = {"_s": "seconds", "_ms": "milliseconds", "_us": "microseconds", "_h": "hours", "_w": "watts"}


def field_path(loc: Sequence[Any], prefix: str = "") -> str:
    """``('workloads', 1, 'parallelism', 'tp')`` -> ``workloads[1].parallelism.tp``; a key that is not a
    plain name is quoted (``labels['gpu type']``)."""
    path = prefix
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            path += f"[{part}]"
        elif isinstance(part, str) and _NAME.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{short_repr(part)}]"
    return path


def _unit(loc: Sequence[Any]) -> str:
    """``" of seconds"`` for a field named ``..._s`` (see :data:`_UNITS`), else ``""``."""
    name = next((part for part in reversed(loc) if isinstance(part, str)), "")
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return f" of {unit}"
    return ""


def _expected(error: Any, loc: Sequence[Any]) -> str | None:
    """What the field accepts, for a type-mismatch error; None for any other error."""
    kind = error["type"]
    if kind in ("literal_error", "enum"):
        return str(error.get("ctx", {}).get("expected", ""))
    phrase = _EXPECTED.get(kind)
    if phrase is not None and phrase.endswith("number"):
        phrase += _unit(loc)
    return phrase


def _message(error: Any, loc: Sequence[Any], model: type[BaseModel] | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    got = short_repr(error.get("input"))
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_field(loc, model)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound} (got {got})"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '')} (got {got})"
    expected = _expected(error, loc)
    if expected is not None:
        return f"must be {expected} (got {got})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg'][:1].lower()}{error['msg'][1:]} (got {got})"


def _unknown_field(loc: Sequence[Any], model: type[BaseModel] | None) -> str:
    known = _known_fields(model, loc[:-1]) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else (f"; known fields: {', '.join(known)}" if known else "")
    return f"unknown field{hint}"


def _known_fields(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unwrap(annotation: Any) -> Any:
    """``annotation`` without ``Annotated[...]`` metadata and without ``| None`` around a single type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _branch(union: Any, tag: Any) -> Any:
    """The member of ``union`` that pydantic's location ``tag`` names, if it can be told; else None."""
    for member in typing.get_args(union):
        base = _unwrap(member)
        if isinstance(base, type) and issubclass(base, BaseModel) and base.__name__ == tag:
            return base
        origin = typing.get_origin(base)
        if origin in (dict, list) and str(tag).startswith(f"{origin.__name__}["):
            return base
    return None


def _step(annotation: Any, part: Any) -> Any:
    """The annotation of what location ``part`` names inside a value of ``annotation`` (None: unknown)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(str(part))
        return None if info is None else info.annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _untagged(loc: Sequence[Any], model: type[BaseModel] | None) -> tuple[list[Any], bool]:
    """``loc`` without pydantic's union-branch tags, and whether it had any.

    Walks ``model``'s annotations along ``loc``: where a field accepts a union of types, the next location
    part is pydantic's tag for the alternative that failed. Tags of validator functions are removed anywhere.
    """
    clean: list[Any] = []
    tagged = False
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if _is_union(annotation):
            tagged = True
            annotation = _branch(annotation, part)
            continue
        if isinstance(part, str) and part.startswith("function-"):
            tagged = True
            continue
        clean.append(part)
        annotation = _step(annotation, part)
    return clean, tagged


def _merged(errors: list[tuple[Any, list[Any]]], model: type[BaseModel] | None) -> list[str]:
    """Messages for the errors of one field's alternatives: one "must be A or B" when each alternative
    rejects the value's type, else the errors of the alternatives that took the type (a bound, say)."""
    expected = [_expected(error, loc) for error, loc in errors]
    if all(phrase is not None for phrase in expected):
        phrases = list(dict.fromkeys(p for p in expected if p))
        got = short_repr(errors[0][0].get("input"))
        return [f"must be {' or '.join(phrases)} (got {got})"]
    chosen = [item for item, phrase in zip(errors, expected, strict=True) if phrase is None]
    return [_message(error, loc, model) for error, loc in chosen]


def problems_from(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[Problem]:
    """One :class:`Problem` per field pydantic rejected, paths prefixed with ``prefix`` (see the module)."""
    fields: dict[str, list[tuple[Any, list[Any]]]] = {}
    for item in error.errors():
        loc, tagged = _untagged(item["loc"], model)
        if item["type"] == "invalid_key" or (loc and loc[-1] == "[key]"):
            loc = loc[:-1] if loc and loc[-1] == "[key]" else loc
            key = f"{field_path(loc[:-1], prefix)}[{short_repr(item['input'])}]"
            fields.setdefault(key, []).append(({**item, "type": "key", "key_type": item["type"]}, loc))
            continue
        key = field_path(loc, prefix)
        fields.setdefault(key if tagged else f"{key}\0{len(fields)}", []).append((item, loc))
    out: list[Problem] = []
    for key, errors in fields.items():
        path = key.split("\0")[0]
        if errors[0][0]["type"] == "key":
            why = errors[0][0].get("ctx", {}).get("error") if errors[0][0].get("key_type") == "value_error" else None
            out.append(Problem(path, str(why) if why else "keys must be text"))
        elif len(errors) > 1:
            out += [Problem(path, message) for message in _merged(errors, model)]
        else:
            out.append(Problem(path, _message(errors[0][0], errors[0][1], model)))
    return out


def unique(problems: Iterable[Problem]) -> list[Problem]:
    """Problems without repeats, in first-seen order."""
    return list(dict.fromkeys(problems))
