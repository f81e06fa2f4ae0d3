"""The notebooks run headless on the demo corpus, so they never rot.

Fast settings: the hashing encoder (no weights) and one head for the training notebooks.
Marked ``slow`` (each notebook starts a kernel and the pipeline trains); CI runs them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nbclient  # the dev extra installs both: a missing one is an error, not a skip
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DATA = Path(os.environ.get("TRIAGE_NOTEBOOK_DATA") or ROOT / "data" / "demo" / "tickets.csv")
MAPPING = Path(os.environ.get("TRIAGE_NOTEBOOK_MAPPING") or ROOT / "data" / "demo" / "mapping.yaml")

pytestmark = pytest.mark.slow


# inline figures each notebook must show (with one head): a plot that silently renders
# nowhere (a forced non-interactive backend) fails here
FIGURES = {"01_data_overview": 1, "02_model_comparison": 2, "03_error_analysis": 1}


def _one_head() -> str:
    from training.mapping import load_mapping

    heads = list(load_mapping(MAPPING).labels)
    return "team" if "team" in heads else heads[0]


def test_the_three_notebooks_exist():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv("TRIAGE_NOTEBOOK_DATA", str(DATA))
    monkeypatch.setenv("TRIAGE_NOTEBOOK_MAPPING", str(MAPPING))
    monkeypatch.setenv("TRIAGE_NOTEBOOK_ENCODER", "hashing")
    monkeypatch.setenv("TRIAGE_NOTEBOOK_HEADS", _one_head())
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks choose inline themselves
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # notebook 03's temporary bundle lands here
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} was committed with outputs: run notebooks/build.py"
    )
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in (o.get("data") or {})]
    assert len(figures) >= FIGURES[path.stem], (
        f"{path.name}: expected {FIGURES[path.stem]}+ inline figures, got {len(figures)}"
    )
