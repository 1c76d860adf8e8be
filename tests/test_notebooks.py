"""Every notebook in ``notebooks/`` runs top to bottom without an error (executed in memory with nbclient on a
``python3`` kernel of this interpreter, importing the same ``dcsim`` as these tests; nothing is written back), and
is stored without outputs."""

from __future__ import annotations

import os
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


def execute(path: Path, cwd: Path) -> Any:
    """Run the notebook at ``path`` in a fresh kernel started in ``cwd``; return the executed notebook.

    The kernel is ipykernel's own ``python3`` on this interpreter (``ensure_native_kernel``, no kernel folders
    searched), so a ``python3`` kernelspec elsewhere on the machine cannot point the run at another Python."""
    notebook = nbformat.read(path, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(
        notebook, km=manager, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(DCSIM_ROOT), os.environ.get("PYTHONPATH")]))}
    client.execute(env=env)  # raises CellExecutionError, naming the cell, on the first error
    return notebook


def outputs(notebook: Any, kind: str) -> list[Any]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if kind in o.get("data", {})]


def test_the_notebooks_exist() -> None:
    names = {p.name for p in PATHS}
    assert set(EXPECTED) <= names, f"missing: {sorted(set(EXPECTED) - names)}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {index} has outputs"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path: Path) -> None:
    notebook = execute(path, REPO if path.name == FROM_ROOT else NOTEBOOKS)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert outputs(notebook, "image/png"), f"{path.name} drew no figure"
    assert outputs(notebook, "text/markdown"), f"{path.name} printed no computed conclusion"
