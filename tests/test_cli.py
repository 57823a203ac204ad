"""The command line: the headless pipeline and `demo --no-serve` on tiny settings."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

from latent_widgets.cli import main

TINY = ["-n", "24", "--size", "48", "64", "--width", "0.125", "--epochs", "1"]


def test_data_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "-n", "12", "--size", "48", "64"]) == 0
    out = capsys.readouterr().out
    assert "SegmentationDataset(12 samples, 48x64, 12 classes" in out and "Road" in out


def test_bad_camvid_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "--camvid", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CamVid folder") and "does not exist" in err and "Traceback" not in err


def test_demo_writes_figures_findings_and_the_explorer_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--no-serve", "--out", str(out), *TINY]) == 0
    for name in ("map_pca", "map_tsne", "map_umap", "interpolation_strip", "triptych"):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    findings = (out / "findings.md").read_text()
    assert "distinct nearest neighbours along the 12-step path" in findings
    nb = nbformat.read(out / "explorer.ipynb", as_version=4)
    source = "\n".join(c.source for c in nb.cells)
    assert "lw.LatentExplorer(lm, train_data)" in source and "epochs=EPOCHS" in source
    printed = capsys.readouterr().out
    assert "serve it with: voila" in printed

    # The served notebook runs, finds the trained model in the cache and shows the explorer.
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert not any(o.get("output_type") == "error" for o in outputs)


def test_project_writes_one_row_per_sample(tmp_path: Path) -> None:
    assert main(["project", "--methods", "pca", "--out", str(tmp_path), *TINY]) == 0
    rows = np.loadtxt(tmp_path / "pca.csv", delimiter=",", skiprows=1)
    assert rows.shape == (24, 3)
    np.testing.assert_array_equal(rows[:, 0], np.arange(24))
