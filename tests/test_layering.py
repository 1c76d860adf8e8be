"""The layering of docs/architecture.md, checked against every import in dcsim/.

The contract lives in the doc, in two fenced blocks that this test parses (so the doc and the check cannot
drift apart):

- ```` ```layers ````: one layer per line, top to bottom, ``name, name : what they hold``. A package (or
  top-level module; ``dcsim`` is the package's ``__init__``) may import only from layers strictly below its
  own; packages on one line are independent of each other.
- ```` ```layer-exceptions ````: ``importer -> imported : reason``, one allowed upward or sideways import per
  line (dotted module names; ``imported`` matches that module and its submodules).

Every ``import``/``from ... import`` counts, at module level or inside a function (a lazy import is still
a dependency), as does ``importlib.import_module("dcsim....")`` with a literal name. Imports under
``if TYPE_CHECKING:`` are not counted: they exist only for the type checker. A package missing from the
layers, a layer naming no package, and an exception that no longer matches any import all fail, like a
violation does.
"""

from __future__ import annotations

import ast
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Import:
    """One import of a module of the package by another: ``importer`` imports ``imported`` (dotted names)."""

    importer: str
    imported: str
    file: str
    line: int
    in_function: bool


@dataclass(frozen=True)
class Contract:
    """The layers (top first, each a tuple of unit names) and the allowed exceptions with their reasons."""

    layers: tuple[tuple[str, ...], ...]
    exceptions: dict[tuple[str, str], str]


def fenced_block(text: str, info: str) -> list[str]:
    """The lines of the one fenced code block whose info string is ``info``."""
    blocks = re.findall(rf"^```{re.escape(info)}[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)
    if len(blocks) != 1:
        raise ValueError(f"expected one ```{info} block, found {len(blocks)}")
    return [line for line in blocks[0].splitlines() if line.strip()]


def parse_contract(text: str) -> Contract:
    """The layer list and the exceptions from a doc's ``layers`` and ``layer-exceptions`` blocks."""
    layers = []
    for line in fenced_block(text, "layers"):
        names, colon, what = line.partition(":")
        units = tuple(names.replace(",", " ").split())
        if not colon or not units or not what.strip():
            raise ValueError(f"layer line must read 'name, name : what they hold': {line!r}")
        layers.append(units)
    exceptions = {}
    for line in fenced_block(text, "layer-exceptions"):
        pair, colon, reason = line.partition(":")
        importer, arrow, imported = pair.partition("->")
        if not colon or not arrow or not reason.strip():
            raise ValueError(f"exception line must read 'importer -> imported : reason': {line!r}")
        exceptions[(importer.strip(), imported.strip())] = reason.strip()
    return Contract(tuple(layers), exceptions)


def module_name(path: Path, source_root: Path) -> str:
    """``dcsim/scheduler/policies.py`` -> ``dcsim.scheduler.policies``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from X import ...`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(path: Path, source_root: Path, package: str) -> list[Import]:
    """Every import of ``package``'s modules in one file (module level or in a function, not TYPE_CHECKING)."""
    module = module_name(path, source_root)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(imported: str, node: ast.AST, in_function: bool) -> None:
        if imported == package or imported.startswith(package + "."):
            found.append(Import(module, imported, str(path), node.lineno, in_function))  # type: ignore[attr-defined]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_one(sub, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, in_function)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:  # ``from dcsim import sweep`` imports the module dcsim.sweep
                add(f"{base}.{alias.name}" if base == package else base, node, in_function)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value, node, in_function)
        visit(node, in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return found


def unit_of(module: str, package: str) -> str:
    """The layering unit of a module: its top-level package or module under ``package`` (the root: ``package``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else package


def check_layering(source_root: Path, package: str, contract: Contract) -> list[str]:
    """Every breach of ``contract`` by the modules of ``source_root / package``, one line each (empty: clean)."""
    files = sorted((source_root / package).rglob("*.py"))
    units = {unit_of(module_name(f, source_root), package) for f in files}
    rank: dict[str, int] = {}
    problems: list[str] = []
    for depth, layer in enumerate(reversed(contract.layers)):  # 0 = the bottom layer
        for unit in layer:
            if unit in rank:
                problems.append(f"{unit}: listed in two layers")
            rank[unit] = depth
    problems += [f"{unit}: in {package}/ but in no layer of the contract" for unit in sorted(units - set(rank))]
    problems += [f"{unit}: a layer names it, but {package}/ has no such package" for unit in sorted(set(rank) - units)]
    used: set[tuple[str, str]] = set()
    for f in files:
        for imp in imports_in(f, source_root, package):
            src, dst = unit_of(imp.importer, package), unit_of(imp.imported, package)
            if src == dst or src not in rank or dst not in rank or rank[dst] < rank[src]:
                continue
            allowed = [
                key
                for key in contract.exceptions
                if key[0] == imp.importer and (imp.imported == key[1] or imp.imported.startswith(key[1] + "."))
            ]
            if allowed:
                used.update(allowed)
                continue
            where = "in a function" if imp.in_function else "at module level"
            relation = f"a higher layer than {src}" if rank[dst] > rank[src] else f"a sibling of {src} in its layer"
            location = f"{Path(imp.file).relative_to(source_root)}:{imp.line}"
            problems.append(f"{location}: {imp.importer} imports {imp.imported} {where}: {dst} is {relation}")
    problems += [
        f"exception {a} -> {b}: no such import any more (remove it from the doc)"
        for a, b in sorted(set(contract.exceptions) - used)
    ]
    return problems


def test_dcsim_follows_the_layers_of_architecture_md():
    contract = parse_contract(ARCHITECTURE.read_text(encoding="utf-8"))
    problems = check_layering(ROOT, "dcsim", contract)
    assert not problems, "dcsim breaks the layering of docs/architecture.md:\n" + "\n".join(problems)


def test_a_wrong_import_in_a_copy_of_dcsim_fails(tmp_path: Path):
    """The real contract catches a lazy upward import: the catalog (bottom) reaching for the run (top)."""
    shutil.copytree(ROOT / "dcsim", tmp_path / "dcsim", ignore=shutil.ignore_patterns("__pycache__", "data"))
    catalog = tmp_path / "dcsim" / "catalog" / "__init__.py"
    lines = catalog.read_text(encoding="utf-8").splitlines()
    catalog.write_text("\n".join([*lines, "", "def _lazy():", "    from dcsim.run import world", ""]), encoding="utf-8")
    contract = parse_contract(ARCHITECTURE.read_text(encoding="utf-8"))
    assert check_layering(tmp_path, "dcsim", contract) == [
        f"dcsim/catalog/__init__.py:{len(lines) + 3}: dcsim.catalog imports dcsim.run in a function: "
        "run is a higher layer than catalog"
    ]


# --- the checker itself, on a synthetic package ---------------------------------------------------------------

DOC = """
```layers
app : the top
mid, side : the middle, two independent packages
low : the bottom
```

```layer-exceptions
{exceptions}
```
"""


def make_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


CLEAN = {
    "__init__.py": "",
    "app/__init__.py": "from pkg.mid import thing\nfrom pkg import low\n",
    "mid/__init__.py": "from .core import thing\n",
    "mid/core.py": "from pkg.low.base import base\nthing = base\n",
    "side.py": "import pkg.low.base\n",
    "low/__init__.py": "",
    "low/base.py": "base = 1\n",
}


def contract_for(exceptions: str = "pkg.app -> pkg.low : unused by the clean tree, removed below") -> Contract:
    text = DOC.format(exceptions=exceptions).replace("app : the top", "pkg, app : the top")
    return parse_contract(text)


@pytest.fixture
def clean_tree(tmp_path: Path) -> Path:
    make_package(tmp_path, CLEAN)
    return tmp_path


def test_a_clean_tree_passes(clean_tree: Path):
    contract = contract_for("pkg.mid.core -> pkg.app : an exception that the tree does not need")
    assert check_layering(clean_tree, "pkg", contract) == [
        "exception pkg.mid.core -> pkg.app: no such import any more (remove it from the doc)"
    ]
    contract = contract_for("pkg.mid.core -> pkg.app : used below")
    make_package(clean_tree, {"mid/core.py": "from pkg.low.base import base\nfrom pkg.app import x\nthing = base\n"})
    assert check_layering(clean_tree, "pkg", contract) == []


def test_a_deliberately_wrong_import_fails(clean_tree: Path):
    """``low`` importing ``app`` (upward) inside a function, and ``mid`` importing its sibling ``side``."""
    make_package(
        clean_tree,
        {
            "low/base.py": """
            base = 1

            def lazy():
                from pkg.app import thing
                return thing
            """,
            "mid/core.py": "from ..side import pkg\nthing = 1\n",
        },
    )
    contract = contract_for("pkg.app -> pkg.low : never matched: app may import low anyway")
    problems = check_layering(clean_tree, "pkg", contract)
    assert problems == [
        "pkg/low/base.py:5: pkg.low.base imports pkg.app in a function: app is a higher layer than low",
        "pkg/mid/core.py:1: pkg.mid.core imports pkg.side at module level: side is a sibling of mid in its layer",
        "exception pkg.app -> pkg.low: no such import any more (remove it from the doc)",
    ]


def test_type_checking_imports_do_not_count_but_import_module_does(clean_tree: Path):
    make_package(
        clean_tree,
        {
            "low/base.py": """
            from typing import TYPE_CHECKING
            import importlib

            if TYPE_CHECKING:
                from pkg.app import thing

            def load():
                return importlib.import_module("pkg.app")
            """
        },
    )
    problems = check_layering(clean_tree, "pkg", contract_for("pkg.low.base -> pkg.app : the loader of a plugin"))
    assert problems == []
    make_package(clean_tree, {"low/base.py": "import importlib\nimportlib.import_module('pkg.app')\n"})
    assert check_layering(clean_tree, "pkg", contract_for("pkg.x -> pkg.y : unused")) == [
        "pkg/low/base.py:2: pkg.low.base imports pkg.app at module level: app is a higher layer than low",
        "exception pkg.x -> pkg.y: no such import any more (remove it from the doc)",
    ]


def test_the_doc_and_the_tree_must_name_the_same_packages(clean_tree: Path):
    make_package(clean_tree, {"extra/__init__.py": ""})
    contract = Contract((*contract_for().layers, ("gone",)), {})
    assert check_layering(clean_tree, "pkg", contract) == [
        "extra: in pkg/ but in no layer of the contract",
        "gone: a layer names it, but pkg/ has no such package",
    ]


def test_a_malformed_contract_is_refused():
    with pytest.raises(ValueError, match="one ```layers block, found 0"):
        parse_contract("no blocks here")
    with pytest.raises(ValueError, match="reason"):
        parse_contract(DOC.format(exceptions="pkg.a -> pkg.b"))
