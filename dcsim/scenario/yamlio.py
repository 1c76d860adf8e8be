"""YAML reading for scenarios: PyYAML's safe loader, with YAML 1.2 floats, shape limits and no duplicate keys.

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``1e9`` and ``3.3e9`` are read
as the strings ``"1e9"`` and ``"3.3e9"``. Scenario authors write byte counts, token budgets and rates that
way, so the scenario loader reads numbers by the YAML 1.2 core schema's rules: ``1e9`` is a float, ``010`` is
ten (not octal eight) and ``1:30`` is text (not the base-60 number 90); ``0x10`` and ``0o17`` are hex and
octal, and ``1_000`` is a thousand. Everything else is as :func:`yaml.safe_load` reads it.

Hostile text is refused before any Python object is built from it, each time with a
:class:`yaml.YAMLError` (so every caller that handles bad YAML handles these too):

- nesting deeper than :data:`MAX_DEPTH` levels (``[[[[...]]]]``), counted after aliases are expanded;
- more than :data:`MAX_VALUES` values, as written or after expanding aliases (a "billion laughs" bomb), or
  an alias that refers to the collection it sits in (a recursive alias): :class:`YamlLimitError`;
- a key given twice in one mapping: :class:`DuplicateKeyError`, naming each repeated key by its path
  (``datacenter.nodes[0].count``); keys merged in with ``<<`` may still be overridden;
- an integer literal too long to convert (Python's limit of 4300 digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Deepest nesting of collections a scenario file may have (after expanding aliases).
MAX_DEPTH = 64
#: Most values (scalars and collections, counted after expanding aliases) a scenario file may hold. The
#: largest shipped scenario holds about 430; long lists (jobs, requests) belong in trace files. PyYAML reads
#: some 10,000 values a second, so this also bounds the time spent reading.
MAX_VALUES = 20_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(yaml.MarkedYAMLError):
    """Well-formed YAML refused for its shape: too deep, aliases expanding too far, or a recursive alias."""


@dataclass(frozen=True)
class DuplicateKey:
    """A key given twice in one mapping: its path (``datacenter.pue``) and where each occurrence is."""

    path: str
    first: Mark
    again: Mark


class DuplicateKeyError(yaml.MarkedYAMLError):
    """Keys repeated within a mapping; ``duplicates`` lists each (the first repeat also marks the error)."""

    def __init__(self, duplicates: list[DuplicateKey]) -> None:
        first = duplicates[0]
        super().__init__(problem=f"duplicate key {first.path}", problem_mark=first.again)
        self.duplicates = duplicates


class ScenarioLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e9``, ``3.3e9`` and ``.5E-3`` as floats, and refuses documents
    that are too deep, expand too far, or repeat a key (see the module)."""

    _depth = 0
    _values = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        self._values += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(
                    problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=self.peek_event().start_mark
                )
            if self._values > MAX_VALUES:
                raise YamlLimitError(
                    problem=f"more than {MAX_VALUES:,} values; long lists belong in a trace file",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None:
            _check_shape(node)
        return node

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """A YAML 1.2 integer (see the module); one too long to convert is refused."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        base = {"0x": 16, "0o": 8}.get(text[:2], 10)
        try:
            return sign * int(text[2:] if base != 10 else text, base)
        except ValueError:
            problem = f"an integer of {len(text)} digits is too long to read" if len(text) > 1000 else "not a number"
            raise YamlLimitError(problem=problem, problem_mark=node.start_mark) from None


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$")
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    re.X,
)
# YAML 1.1's number rules replaced by YAML 1.2's (see the module); the other implicit types are kept.
ScenarioLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ScenarioLoader.add_implicit_resolver(_INT_TAG, _INT_12, list("-+0123456789"))
ScenarioLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list("-+0123456789."))
ScenarioLoader.add_constructor(_INT_TAG, ScenarioLoader.construct_yaml_int)


def _children(node: Node) -> list[tuple[Node, str]]:
    """The nodes directly inside ``node`` with the path suffix leading to each (keys have none)."""
    if isinstance(node, SequenceNode):
        return [(item, f"[{index}]") for index, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        out: list[tuple[Node, str]] = []
        for key, value in node.value:
            out.append((key, ""))
            out.append((value, _key_suffix(key)))
        return out
    return []


_NAME = re.compile(r"[A-Za-z_][\w-]*")


def _key_suffix(key: Node) -> str:
    """``.name`` for a plain key, ``['odd key']`` (repr, cut short) for anything else."""
    if isinstance(key, ScalarNode) and _NAME.fullmatch(key.value):
        return f".{key.value}"
    text = key.value if isinstance(key, ScalarNode) else f"<{type(key).__name__}>"
    return f"[{text[:40]!r}]"


def _duplicates(node: MappingNode, path: str) -> list[DuplicateKey]:
    """Plain keys given twice in ``node`` (merge keys ``<<`` excepted)."""
    seen: dict[tuple[str, str], Mark] = {}
    found = []
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
            continue
        ident = (key.tag, key.value)
        if ident in seen:
            found.append(DuplicateKey(f"{path}{_key_suffix(key)}".lstrip("."), seen[ident], key.start_mark))
        else:
            seen[ident] = key.start_mark
    return found


def _check_shape(root: Node) -> None:
    """Refuse ``root`` if, with aliases expanded, it is deeper than :data:`MAX_DEPTH`, holds more than
    :data:`MAX_VALUES` values or is recursive; then if any mapping repeats a key.

    Visits each node once (aliases share nodes), iteratively, so it takes time in the size of the text.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()
    duplicates: list[DuplicateKey] = []
    stack: list[tuple[Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, done = stack.pop()
        key = id(node)
        if done:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child, _ in children)
            depth[key] = 1 + max((depth[id(child)] for child, _ in children), default=0)
            entered.discard(key)
            if size[key] > MAX_VALUES:
                raise YamlLimitError(
                    problem=f"aliases expand to more than {MAX_VALUES:,} values; write the values out",
                    problem_mark=node.start_mark,
                )
            if depth[key] > MAX_DEPTH:
                raise YamlLimitError(
                    problem=f"aliases nest values more than {MAX_DEPTH} levels deep", problem_mark=node.start_mark
                )
            continue
        if key in size:
            continue
        if key in entered:
            raise YamlLimitError(problem="an alias refers to the collection it is in", problem_mark=node.start_mark)
        entered.add(key)
        children = _children(node)
        if isinstance(node, MappingNode):
            duplicates += _duplicates(node, path)
        stack.append((node, path, True))
        stack.extend((child, f"{path}{suffix}", False) for child, suffix in reversed(children))  # in text order
    if duplicates:
        raise DuplicateKeyError(duplicates)


def load_yaml(text: str) -> Any:
    """The YAML document in ``text`` (safe types only), floats read per YAML 1.2 (see the module).

    Raises :class:`yaml.YAMLError` for text that is not YAML, and its subclasses :class:`YamlLimitError`
    and :class:`DuplicateKeyError` for YAML that is refused.
    """
    return yaml.load(text, Loader=ScenarioLoader)
