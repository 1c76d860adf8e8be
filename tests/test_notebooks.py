"""The notebooks in ``notebooks/`` are shipped executed, so a reader on the web sees their tables, figures and
computed conclusions, and those stored outputs are current.

Each notebook is run top to bottom in memory with nbclient on a ``python3`` kernel of this interpreter (importing
the same ``dcsim`` as these tests) and its fresh outputs are compared with the stored ones, cell by cell: the same
kinds of output, the same text once a number may differ by one unit in its last printed digit (platform rounding),
and figures of the same pixel size. The stored notebooks themselves must hold no error, warning, absolute path or
execution timing, and stay under ``MAX_NOTEBOOK_BYTES``.

After changing a notebook, or dcsim in a way that moves its results, store fresh outputs with

    DCSIM_UPDATE_NOTEBOOKS=1 python -m pytest tests/test_notebooks.py

which runs the same executions and writes each notebook back (normalised by :func:`normalise`)."""

from __future__ import annotations

import base64
import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

import dcsim

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (a dependency of nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
EXPECTED = (
    "01_training_plan_and_hardware.ipynb",
    "02_inference_capacity.ipynb",
    "03_scheduler_policies.ipynb",
    "04_cost_control_case_study.ipynb",
)
# Jupyter starts a kernel in the notebook's folder, `python -m pytest` users work from the repository root: the
# notebooks must find the repository from either, so this one runs from the root and the others from notebooks/.
FROM_ROOT = "02_inference_capacity.ipynb"
CELL_TIMEOUT_S = 600  # a hang fails; speed is not asserted here
DCSIM_ROOT = Path(dcsim.__file__).resolve().parents[1]  # the kernel imports this dcsim, not another install
UPDATE = os.environ.get("DCSIM_UPDATE_NOTEBOOKS") == "1"
MAX_NOTEBOOK_BYTES = 300_000  # the whole .ipynb, figures included
MAX_FIGURE_PX = (1100, 800)  # width, height of a stored PNG: the notebooks draw at figure.dpi 72
TEXT_TYPES = ("text/plain", "text/markdown", "text/html")
# pandas' Styler names its CSS ids after a random uuid (T_ then 5 hex digits): stored as T_<cell>_<output>.
STYLER_ID = re.compile(r"\bT_[0-9a-f]{5}(?=[_\"\s{])")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")
OBJECT_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")  # a default repr, e.g. of a Styler: stored without its address
MACHINE_PATH = re.compile(r"(?<![\w.])(?:/home/|/Users/|/tmp/|/work/|[A-Z]:\\\\)")


def execute(path: Path, cwd: Path) -> Any:
    """Run the notebook at ``path`` in a fresh kernel started in ``cwd``; return the executed notebook.

    The kernel is ipykernel's own ``python3`` on this interpreter (``ensure_native_kernel``, no kernel folders
    searched), so a ``python3`` kernelspec elsewhere on the machine cannot point the run at another Python."""
    notebook = nbformat.read(path, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        record_timing=False,
        coalesce_streams=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(DCSIM_ROOT), os.environ.get("PYTHONPATH")]))}
    client.execute(env=env)  # raises CellExecutionError, naming the cell, on the first error
    return notebook


def normalise(notebook: Any) -> Any:
    """Drop what changes from run to run or machine to machine without a change of results: the kernel's Python
    version, per-cell execution metadata and output metadata, object addresses in default reprs, and the
    Styler's random CSS ids."""
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        for number, output in enumerate(cell.outputs):
            if "metadata" in output:
                output.metadata = {}
            data = output.get("data", {})
            if "text/plain" in data:
                data["text/plain"] = OBJECT_ADDRESS.sub(">", data["text/plain"])
            if "text/html" in data:
                data["text/html"] = STYLER_ID.sub(f"T_{index}_{number}", data["text/html"])
    return notebook


def code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def numbered_code_cells(notebook: Any) -> list[tuple[int, Any]]:
    """The code cells with their index among all cells (as Jupyter counts them, from 0)."""
    return [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def outputs(notebook: Any, kind: str) -> list[Any]:
    return [o for cell in code_cells(notebook) for o in cell.outputs if kind in o.get("data", {})]


def texts(output: Any) -> dict[str, str]:
    """The text of an output by kind: stream text under its stream name, else each text MIME type it carries."""
    if output.output_type == "stream":
        return {output.name: output.text}
    data = output.get("data", {})
    return {kind: data[kind] for kind in TEXT_TYPES if kind in data}


def png_size(output: Any) -> tuple[int, int]:
    """Width and height in pixels of an output's PNG (from its IHDR chunk)."""
    header = base64.b64decode(output.data["image/png"])[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def same_text(stored: str, fresh: str) -> bool:
    """Equal apart from numbers that differ by at most one unit in the last digit printed."""
    if stored == fresh:
        return True
    if NUMBER.split(stored) != NUMBER.split(fresh):
        return False
    for old, new in zip(NUMBER.findall(stored), NUMBER.findall(fresh), strict=True):
        mantissa = old.replace(",", "").split("e")[0]
        unit = 10.0 ** -(len(mantissa.split(".")[1]) if "." in mantissa else 0)
        scale = 10.0 ** int(old.split("e")[1]) if "e" in old else 1.0
        if abs(float(old.replace(",", "")) - float(new.replace(",", ""))) > 1.000001 * unit * scale:
            return False
    return True


def differences(stored: Any, fresh: Any) -> list[str]:
    """Where the stored notebook's outputs are not those of a fresh run, one line each."""
    problems: list[str] = []
    for (index, old), new in zip(numbered_code_cells(stored), code_cells(fresh), strict=True):
        kinds = [(o.output_type, sorted(o.get("data", {}))) for o in old.outputs]
        fresh_kinds = [(o.output_type, sorted(o.get("data", {}))) for o in new.outputs]
        if kinds != fresh_kinds:
            problems.append(f"cell {index}: stored outputs {kinds}, a fresh run gives {fresh_kinds}")
            continue
        for old_output, new_output in zip(old.outputs, new.outputs, strict=True):
            for kind, text in texts(old_output).items():
                if not same_text(text, texts(new_output)[kind]):
                    problems.append(f"cell {index}: stored {kind} differs from a fresh run's")
            if "image/png" in old_output.get("data", {}) and png_size(old_output) != png_size(new_output):
                problems.append(f"cell {index}: figure of {png_size(old_output)} px, now {png_size(new_output)}")
    return problems


def test_the_notebooks_exist() -> None:
    names = {p.name for p in PATHS}
    assert set(EXPECTED) <= names, f"missing: {sorted(set(EXPECTED) - names)}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_stored_executed_and_clean(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"
    code = code_cells(notebook)
    # One top-to-bottom run in a fresh kernel numbers the code cells 1, 2, 3, ... in order.
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "not one run, top to bottom"
    assert outputs(notebook, "image/png"), f"{path.name} stores no figure"
    assert outputs(notebook, "text/markdown"), f"{path.name} stores no computed conclusion"
    assert notebook.metadata.get("language_info") == {"name": "python"}, "kernel version stored"
    for index, cell in numbered_code_cells(notebook):
        assert "execution" not in cell.metadata, f"cell {index} stores execution timings"
        for output in cell.outputs:
            assert output.output_type != "error", f"cell {index} stores an error"
            assert output.get("name") != "stderr", f"cell {index} stores a warning: {output.text[:200]}"
            for text in texts(output).values():
                assert not MACHINE_PATH.search(text) and str(REPO) not in text, f"cell {index} stores a local path"
            if "image/png" in output.get("data", {}):
                width, height = png_size(output)
                too_big = width > MAX_FIGURE_PX[0] or height > MAX_FIGURE_PX[1]
                assert not too_big, f"cell {index}: figure of {width} x {height} px"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_and_its_stored_outputs_are_current(path: Path) -> None:
    fresh = normalise(execute(path, REPO if path.name == FROM_ROOT else NOTEBOOKS))
    assert not [o for cell in code_cells(fresh) for o in cell.outputs if o.output_type == "error"]
    assert outputs(fresh, "image/png"), f"{path.name} drew no figure"
    assert outputs(fresh, "text/markdown"), f"{path.name} printed no computed conclusion"
    if UPDATE:
        path.write_text(nbformat.writes(fresh) + "\n", encoding="utf-8")
        return
    problems = differences(nbformat.read(path, as_version=4), fresh)
    assert not problems, (
        f"{path.name}'s stored outputs are not what it computes now (store fresh ones with "
        "DCSIM_UPDATE_NOTEBOOKS=1 python -m pytest tests/test_notebooks.py):\n" + "\n".join(problems)
    )


def test_same_text_allows_one_unit_in_the_last_digit_only() -> None:
    assert same_text("MFU 45.3%, 1,204 plans", "MFU 45.4%, 1,205 plans")
    assert same_text("3.2e+11 tokens", "3.3e+11 tokens")
    assert not same_text("MFU 45.3%", "MFU 45.5%")
    assert not same_text("1,204 plans", "1,206 plans")
    assert not same_text("fastest: fifo", "fastest: sjf")
    assert not same_text("3 runs", "3 runs; 1 failed")
