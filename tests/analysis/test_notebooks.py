"""Every notebook runs top to bottom, headless, on a model and a review store made here."""

from __future__ import annotations

import asyncio
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SAMPLES = REPO_ROOT / "data" / "samples"
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds; generous because the machine may be shared


def parameter_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    assert "parameters" in code[0].metadata.get("tags", []), (
        "the first code cell must hold the parameters and be tagged 'parameters'"
    )
    return code[0]


def with_parameters(path: Path, values: dict[str, Any]) -> nbformat.NotebookNode:
    """The notebook with ``NAME = …`` lines of its parameter cell replaced by ``values``."""
    notebook = nbformat.read(path, as_version=4)
    cell = parameter_cell(notebook)
    lines = cell.source.splitlines()
    for name, value in values.items():
        found = [i for i, line in enumerate(lines) if re.match(rf"{name}\s*=", line)]
        assert found, f"{path.name}: no parameter {name} in the parameters cell"
        lines[found[0]] = f"{name} = {value!r}"
    cell.source = "\n".join(lines)
    return notebook


def test_notebooks_are_there() -> None:
    names = [path.name for path in NOTEBOOKS]
    assert names == [
        "01_data_overview.ipynb",
        "02_model_quality.ipynb",
        "03_review_feedback.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    parameter_cell(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} has outputs: clear them before committing "
                "(Jupyter: Edit > Clear Outputs of All Cells)"
            )
    assert notebook.metadata.kernelspec.name == KERNEL


def test_kernel_is_this_interpreter() -> None:
    """``python3`` resolves to ipykernel's built-in spec, run with the tests' interpreter."""
    command = KernelManager(kernel_name=KERNEL).format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve(), (
        f"kernel {KERNEL!r} starts {command[0]}, not {sys.executable}; "
        "remove a stale user kernelspec (jupyter kernelspec list)"
    )


def parameters(stem: str, model_dir: Path, database_url: str) -> dict[str, Any]:
    """What each notebook gets instead of its defaults: this test's model, data and store."""
    both = [str(SAMPLES / "train.jsonl"), str(SAMPLES / "eval.jsonl")]
    return {
        "01_data_overview": {"DATA_PATHS": both},
        "02_model_quality": {
            "MODEL_DIR": str(model_dir),
            "MODEL_VERSION": None,
            "DATA_PATHS": [str(SAMPLES / "eval.jsonl")],
        },
        "03_review_feedback": {"DATABASE_URL": database_url, "MODEL_DIR": str(model_dir)},
    }[stem]


@pytest.fixture(scope="module")
def executed(trained_model_dir: Path, review_store: str) -> dict[str, Any]:
    """Every notebook run once, concurrently, each in its own kernel: a run is mostly kernel
    start-up and imports, so three at once take little longer than one. Maps each notebook's
    stem to the executed notebook, or to the exception that stopped it."""
    clients = {
        path.stem: NotebookClient(
            with_parameters(path, parameters(path.stem, trained_model_dir, review_store)),
            kernel_name=KERNEL,
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        )
        for path in NOTEBOOKS
    }

    async def run_all() -> list[Any]:
        runs = (client.async_execute() for client in clients.values())
        return await asyncio.gather(*runs, return_exceptions=True)

    # In a thread of its own: the browser tests' Playwright keeps an event loop running in
    # this one for the whole session, and asyncio.run refuses to start beside it.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, run_all()).result()
    return {
        stem: result if isinstance(result, BaseException) else client.nb
        for (stem, client), result in zip(clients.items(), results, strict=True)
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, executed: dict[str, Any]) -> None:
    result = executed[path.stem]
    if isinstance(result, BaseException):  # CellExecutionError names the cell and traceback
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(result))  # the kernel colours tracebacks
        pytest.fail(f"{path.name} failed:\n{plain}", pytrace=False)
    images = sum(
        "image/png" in output.get("data", {})
        for cell in result.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert images >= 2, f"{path.name} drew {images} picture(s)"
