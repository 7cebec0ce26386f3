"""notebooks/*.ipynb run top to bottom (nbclient, kernel python3) in a scratch folder."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Per-cell limit: 300 s by default (a hung kernel must fail, not stall CI);
# scripts/sanitize.sh raises it, since ASan + UBSan run the cells 3-5x slower.
CELL_TIMEOUT = int(os.environ.get("UBDIFF_NOTEBOOK_CELL_TIMEOUT", "300"))


def _run_notebook(name, tmp_path, monkeypatch, timeout=CELL_TIMEOUT):
    import ipykernel  # noqa: F401  (the test extra installs all three)
    import nbclient
    import nbformat
    # the kernel imports ubdiff from this checkout (no install needed)
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()   # raises CellExecutionError naming the failing cell
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_evaluation_notebook_runs(tmp_path, monkeypatch):
    # ~12 s on 2 idle cores (about 40 wave simulations dominate), more when loaded
    out = _run_notebook("evaluation.ipynb", tmp_path, monkeypatch)
    assert "notebook ran in" in out
    assert "trained on generated" in out and "trained on real" in out
    report = tmp_path / "evaluation_example" / "report"
    for f in ("report.json", "report.md", "inversionnet_examples.png", "physics_worst_pairs.png"):
        assert (report / f).exists(), f


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # UBDiff end to end on tiny data: ~7 s on 2 idle cores, minutes when the machine is oversubscribed
    out = _run_notebook("quickstart.ipynb", tmp_path, monkeypatch)
    assert "notebook ran in" in out
    assert (tmp_path / "quickstart_generated" / "model1.npy").exists()
    assert (tmp_path / "quickstart_pairs.png").exists()
