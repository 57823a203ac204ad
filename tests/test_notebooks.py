"""The example notebooks run top to bottom on the real CamVid copy, with small settings.

Each notebook opens with a cell tagged ``parameters``; as papermill does, the
test inserts a cell after it that overrides those values for CI (CamVid at a
small size, a narrow model, few epochs). The executed notebooks are kept for
the docs build (``tests/test_docs.py``) and each one's findings table is
printed in the pytest summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import CAMVID, NOTEBOOK_FINDINGS, REPO
from test_tf_setup import tf_log_lines

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = {
    "01_segnet_camvid.ipynb",
    "02_deeplabv3plus_camvid.ipynb",
    "03_bring_your_own_model.ipynb",
    "04_attribute_vectors.ipynb",
}

# Small settings: every notebook must run in a few minutes on 2 cores.
CI_PARAMETERS = {
    "DATA": str(CAMVID),
    "IMAGE_SIZE": (48, 64),
    "WIDTH": 0.125,
    "EPOCHS": 2,
    "N_SYNTHETIC": 60,
}


def test_all_notebooks_are_present_and_stripped() -> None:
    assert {p.name for p in NOTEBOOKS} == EXPECTED
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        assert nb.cells.index(tagged[0]) <= 2, f"{path.name}: the parameters cell comes first"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name}: outputs must be stripped in the repository"
                )


def _with_parameters(nb: nbformat.NotebookNode, params: dict) -> nbformat.NotebookNode:
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "# Parameters injected by tests/test_notebooks.py\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)
    return nb


@pytest.fixture(scope="session")
def executed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("LATENT_WIDGETS_EXECUTED_NOTEBOOKS")
    path = Path(target) if target else tmp_path_factory.mktemp("executed-notebooks")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, executed_dir: Path, record_property) -> None:
    from nbclient import NotebookClient

    nb = _with_parameters(nbformat.read(path, as_version=4), CI_PARAMETERS)
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    # The kernel gets the user's environment: no TensorFlow variable set (conftest sets the log level).
    env = {k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"}}
    client.execute(env=env)  # raises CellExecutionError, with the cell and traceback, on any error
    nbformat.write(nb, executed_dir / path.name)

    # No TensorFlow log line in any output, stderr included.
    every_output = "\n".join(
        out.get("text", "") + "".join(map(str, out.get("data", {}).values())) + "\n".join(out.get("traceback", []))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    assert not tf_log_lines(every_output), f"{path.name} shows TensorFlow logs: {tf_log_lines(every_output)[:5]}"

    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out.get("text", ""))
            elif "text/markdown" in out.get("data", {}):
                text.append(out["data"]["text/markdown"])
    joined = "\n".join(text)
    assert "Findings" in joined, f"{path.name} printed no findings table"
    if path.stem == "02_deeplabv3plus_camvid":
        # The DeepLabv3+ and SegNet explorers are linked: a selection written to one session is the other's.
        assert "selection mirrored in the SegNet explorer: True" in joined, joined[-2000:]
        if "01_segnet_camvid" in NOTEBOOK_FINDINGS:
            # Notebook 01 ran first in this session: its SegNet is reused from the cache, not trained again.
            assert "SegNet loaded from the cache" in joined, "notebook 02 retrained notebook 01's SegNet"
    NOTEBOOK_FINDINGS[path.stem] = joined[joined.rindex("Findings") :]
    record_property("findings", (path.stem, NOTEBOOK_FINDINGS[path.stem]))
    # every figure the notebook draws made it into the outputs
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images >= 3, f"{path.name} shows {images} figures"


def test_parameters_cell_names_the_common_settings() -> None:
    # CI overrides these names; a notebook that renamed one would silently run at full size
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = [
            line.split("=")[0].strip()
            for line in cell.source.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        ]
        assert {"DATA", "IMAGE_SIZE", "WIDTH", "EPOCHS"} <= set(names), f"{path.name}: {names}"


@pytest.mark.notebooks
def test_docs_build_strict_with_rendered_notebooks(executed_dir: Path, tmp_path: Path) -> None:
    """`mkdocs build --strict` passes, and the notebook pages carry their figures."""
    import shutil
    import subprocess
    import sys

    executed = sorted(executed_dir.glob("*.ipynb"))
    assert {p.name for p in executed} == EXPECTED, "the notebook tests above must pass first"
    site_src = tmp_path / "src"
    shutil.copytree(REPO / "docs", site_src / "docs")
    shutil.copy(REPO / "mkdocs.yml", site_src / "mkdocs.yml")
    (site_src / "docs" / "notebooks").mkdir(exist_ok=True)
    for nb in executed:
        shutil.copy(nb, site_src / "docs" / "notebooks" / nb.name)
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(site_src / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=site_src,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING -" not in proc.stderr, proc.stderr
    page = (tmp_path / "site" / "notebooks" / "01_segnet_camvid" / "index.html").read_text()
    assert page.count("data:image/png;base64") >= 3, "the rendered notebook lost its figures"
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "LatentModel" in api and "synthetic_road_scenes" in api
