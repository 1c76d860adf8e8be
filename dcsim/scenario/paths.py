"""Field paths in the scenario contract's syntax: ``workloads[0].parallelism.tp``, ``datacenter.nodes[0].count``.

A path is a dotted list of keys, each optionally followed by ``[i]`` list indices. :func:`set_path` writes a
value into a nested mapping (creating missing mappings on the way, so ``scheduler.policy`` works when the base
file has no ``scheduler`` section); whether the field exists is then up to scenario validation, which names it.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INDEX = re.compile(r"\[(\d+)\]")

Part = str | int


def parse_path(path: str) -> tuple[Part, ...]:
    """``'workloads[0].synthetic.rate_per_h'`` -> ``('workloads', 0, 'synthetic', 'rate_per_h')``.

    Raises ``ValueError("PATH: why")`` for a malformed path.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"{path!r}: a sweep path must be a non-empty string like workloads[0].parallelism.tp")
    parts: list[Part] = []
    for segment in path.split("."):
        key = _KEY.match(segment)
        if key is None:
            raise ValueError(f"{path}: bad path segment {segment!r} (expected name or name[index])")
        parts.append(key.group())
        rest = segment[key.end() :]
        while rest:
            index = _INDEX.match(rest)
            if index is None:
                raise ValueError(f"{path}: bad path segment {segment!r} (expected name or name[index])")
            parts.append(int(index.group(1)))
            rest = rest[index.end() :]
    return tuple(parts)


def format_path(parts: tuple[Part, ...]) -> str:
    """The inverse of :func:`parse_path`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def set_path(tree: MutableMapping[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in the nested mapping ``tree`` to ``value`` (in place).

    Missing mapping keys are created; a list index past the end, or indexing into a value that is not a list
    (or a key into one that is not a mapping), raises ``ValueError("PATH: why")``.
    """
    parts = parse_path(path)
    node: Any = tree
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = format_path(parts[:depth]) or "the scenario"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{path}: {where} is not a list (got {type(node).__name__})")
            if part >= len(node):
                raise ValueError(f"{path}: index {part} is out of range ({where} has {len(node)} entries)")
            if last:
                node[part] = value
            else:
                node = node[part]
            continue
        if not isinstance(node, MutableMapping):
            raise ValueError(f"{path}: {where} is not a mapping (got {type(node).__name__})")
        if last:
            node[part] = value
        else:
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(parts[depth + 1], int) else {}
            node = node[part]


def get_path(tree: Any, path: str) -> Any:
    """The value at ``path`` in ``tree``; ``KeyError`` naming the path if it is absent."""
    node = tree
    for part in parse_path(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise KeyError(path) from None
    return node
