"""The command line: the headless pipeline and `demo --no-serve` on tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import REPO
from test_tf_setup import tf_log_lines

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
    # Synthetic scenes, not CamVid: no per-row comparison with the study, one note instead.
    assert "| question | measured |" in findings and "| study |" not in findings
    assert findings.count("The study measured CamVid") == 1
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


def test_train_prints_no_tensorflow_log_lines(tmp_path: Path) -> None:
    # The user's environment: neither TensorFlow variable set (conftest sets the log level).
    env = {k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"}}
    env["LATENT_WIDGETS_CACHE_DIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "latent_widgets.cli", "train", *TINY],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "latent shape" in proc.stdout
    assert not tf_log_lines(proc.stderr + proc.stdout), proc.stderr[-3000:]


@pytest.mark.parametrize(("n", "expected"), [(40, (0, 39)), (139, (38, 138)), (150, (38, 138)), (138, (0, 137))])
def test_figures_and_explorer_open_on_the_same_endpoints(n: int, expected: tuple[int, int]) -> None:
    from toy import ToyLatentModel

    import latent_widgets as lw
    from latent_widgets.study import default_endpoints

    assert default_endpoints(n) == expected  # the study's 38 -> 138 only where the data has sample 138
    data = lw.synthetic_road_scenes(n, size=(16, 16), seed=0)
    model = ToyLatentModel(input_shape=(16, 16, 3), n_classes=data.n_classes, latent_channels=2)
    explorer = lw.LatentExplorer(model, data, map_method="pca", methods=("pca",), asynchronous=False)
    assert (explorer.session.index_a, explorer.session.index_b) == expected
    # endpoints the user gives are kept
    explorer = lw.LatentExplorer(model, data, index_b=3, map_method="pca", methods=("pca",), asynchronous=False)
    assert (explorer.session.index_a, explorer.session.index_b) == (expected[0], 3)


def test_the_study_column_only_for_camvid() -> None:
    from types import SimpleNamespace

    from latent_widgets.study import Finding, findings_markdown, is_camvid, study_findings

    assert is_camvid(SimpleNamespace(group_names=("0001TP", "0006R0", "0016E5")))
    assert is_camvid(SimpleNamespace(group_names=("0016E5",)))  # CamVid's val split: one sequence
    assert not is_camvid(SimpleNamespace(group_names=("drive00", "drive01")))
    assert not is_camvid(SimpleNamespace(group_names=()))

    groups = np.repeat([0, 1], 10)
    maps = {"pca": np.c_[5.0 * groups, np.arange(20.0)]}  # x: 0 or 5, y: 0..19
    path = SimpleNamespace(masks=np.zeros((3, 4, 4), int), alphas=np.linspace(0, 1, 3))
    nn = SimpleNamespace(indices=np.array([0, 4, 19]), distances=np.array([0, 1.5, 0]), n_distinct=3)
    kwargs = dict(groups=groups, maps=maps, path=path, path_neighbors=nn, n_classes=2, k=3, network="segnet")

    camvid = findings_markdown(study_findings(**kwargs, camvid=True)).splitlines()
    assert camvid[2] == "| question | study | measured |"
    assert "| PCA coordinate range (x; y) | about -236000..254400 | 0..5; 0..19.0 |" in camvid
    assert not any("The study measured CamVid" in line for line in camvid)

    other = findings_markdown(study_findings(**kwargs, camvid=False)).splitlines()
    assert other[2] == "| question | measured |"
    assert "| PCA coordinate range (x; y) | 0..5; 0..19.0 |" in other
    assert "| distinct nearest neighbours along the 3-step path | 3 (0, 4, 19) |" in other
    assert other[-1].startswith("The study measured CamVid") and sum("CamVid" in line for line in other) == 1
    # rows with and without the study's statement: the column stays, "-" where it has none
    assert findings_markdown([Finding("q", "s", "m"), Finding("r", None, "n")]).splitlines()[-1] == "| r | - | n |"
