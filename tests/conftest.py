"""Shared fixtures: the real CamVid copy beside the repository, small datasets, toy models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Keep TensorFlow quiet and on the CPU threads CI has.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before any test module imports keras: the package's TensorFlow defaults
# (oneDNN's custom operations off, tensorflow#117700) must precede TensorFlow.
import latent_widgets  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("LATENT_WIDGETS_CAMVID", REPO.parent / "shared" / "camvid"))

# Findings table of each executed notebook (tests/test_notebooks.py), by notebook: in the process that ran it.
# The test also records it on its report (``record_property("findings", ...)``), which pytest-xdist's workers
# send to the main process, so that CI's log shows the tables even when every test passes.
NOTEBOOK_FINDINGS: dict[str, str] = {}

#: The slowest modules, slowest first (``pytest --durations``). ``make test`` runs the suite on two
#: pytest-xdist workers with ``--dist loadscope`` (a module runs whole, in order, on one worker, so its
#: servers and trained models are made once); a worker takes the next module in collection order when it
#: is free, so the long ones start first and the many short ones fill in beside them.
SLOWEST_FIRST = (
    "test_browser_scale",
    "test_soak",
    "test_notebooks",
    "test_browser",
    "test_jupyterlab",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: k for k, name in enumerate(SLOWEST_FIRST)}
    # A stable sort: the order inside a module, and of the other modules, stays as collected.
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


def pytest_terminal_summary(terminalreporter) -> None:
    tables = {
        name: table
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, (name, table) in getattr(report, "user_properties", ())
        if key == "findings"
    }
    if tables:
        terminalreporter.write_sep("=", "notebook findings")
        for name, table in sorted(tables.items()):
            terminalreporter.write_line(f"== {name}\n{table}\n")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session writes its caches to a fresh temporary folder."""
    if "LATENT_WIDGETS_CACHE_DIR" not in os.environ:
        os.environ["LATENT_WIDGETS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.fail(f"CamVid not found at {CAMVID}; CI lays it at ../shared/camvid")
    return CAMVID


@pytest.fixture(scope="session")
def camvid_small(camvid_root: Path):
    """CamVid train at 48x64 (fast to load and to feed a model)."""
    from latent_widgets import load_camvid

    return load_camvid(camvid_root, "train", size=(48, 64), progress=False)


@pytest.fixture(scope="session")
def synthetic_small():
    from latent_widgets import synthetic_road_scenes

    return synthetic_road_scenes(40, size=(48, 64), seed=0)


@pytest.fixture(scope="module")
def ds():
    """24 synthetic scenes at 48x64 in two drives (so "group" has two colours): the widget and session tests'."""
    from latent_widgets import synthetic_road_scenes

    return synthetic_road_scenes(24, size=(48, 64), seed=0, frames_per_drive=12)


@pytest.fixture()
def model():
    """The numpy toy encoder/decoder of ``tests/toy.py`` for ``ds`` (no TensorFlow)."""
    from toy import ToyLatentModel

    return ToyLatentModel(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, seed=1)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
