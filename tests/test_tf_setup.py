"""The oneDNN guard: TensorFlow 2.21's oneDNN kernels corrupt the heap on some CPUs.

The crash (``double free or corruption`` during DeepLabv3+ training, exit 134)
depends on the CPU: TensorFlow turns its oneDNN custom operations on by
default only where it finds AVX512-VNNI/BF16, AVX-VNNI or AMX. The tests run
the reported case in a fresh interpreter with the environment a user has
(``TF_ENABLE_ONEDNN_OPTS`` unset) and check, on any CPU, that TensorFlow
started with those operations off.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

# The child reports what TensorFlow itself says about oneDNN.
_ONEDNN_STATE = textwrap.dedent(
    """
    import os
    from tensorflow.python.util import _pywrap_util_port
    print("ENV", os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
    print("ONEDNN", _pywrap_util_port.IsMklEnabled())
    """
)


def _run(code: str, env_update: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(env_update or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_deeplab_training_at_the_users_default_does_not_crash(camvid_root: Path) -> None:
    code = (
        textwrap.dedent(
            f"""
        import latent_widgets as lw
        from latent_widgets.model import zoo, training

        train = lw.load_camvid({str(camvid_root)!r}, "train", size=(48, 64), progress=False)
        val = lw.load_camvid({str(camvid_root)!r}, "val", size=(48, 64), progress=False)
        net = zoo.deeplabv3_plus(train.n_classes, (48, 64, 3), backbone_width=0.125)
        result = training.train(net, train, val, epochs=2, learning_rate=3e-3, cache=False, progress=False)
        assert len(result.history.loss) == 2
        """
        )
        + _ONEDNN_STATE
    )
    proc = _run(code)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "ENV 0" in proc.stdout
    assert "ONEDNN False" in proc.stdout, "TensorFlow started with oneDNN custom operations on"


def test_a_value_the_user_set_is_kept() -> None:
    proc = _run("import latent_widgets, os; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])", {"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_tensorflow_imported_first_is_left_alone_and_warned_about_only_if_onednn_is_on() -> None:
    code = textwrap.dedent(
        """
        import os, warnings
        import tensorflow
        from tensorflow.python.util import _pywrap_util_port
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)  # as if the user had not set it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import latent_widgets
        warned = any("TF_ENABLE_ONEDNN_OPTS=0" in str(w.message) for w in caught)
        assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
        assert warned == _pywrap_util_port.IsMklEnabled(), (warned, _pywrap_util_port.IsMklEnabled())
        print("OK")
        """
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "OK"
    # oneDNN on when TensorFlow started: the guard can no longer act, so it warns.
    proc = _run(code, {"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "OK"


# What TensorFlow's C++ side prints on start-up and first use (absl's pre-init
# notice, cpu_feature_guard, oneDNN, CUDA stubs): none may reach a user.
TF_LOG_MARKERS = ("I0000", "E0000", "W0000", "oneDNN", "cpu_feature_guard", "absl::InitializeLog")


def tf_log_lines(text: str) -> list[str]:
    """The lines of ``text`` that TensorFlow's C++ logging printed."""
    return [line for line in text.splitlines() if any(m in line for m in TF_LOG_MARKERS)]


def _users_env() -> dict[str, str]:
    """The environment a user has: neither TensorFlow variable set (conftest sets the log level)."""
    return {k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"}}


_TRAIN_AND_ENCODE = textwrap.dedent(
    """
    import os
    import latent_widgets as lw
    from latent_widgets.model import zoo, training

    tr = lw.synthetic_road_scenes(16, size=(48, 64), seed=0)
    va = lw.synthetic_road_scenes(8, size=(48, 64), seed=1)
    net = zoo.segnet(n_classes=tr.n_classes, input_shape=(48, 64, 3), width=0.125)
    result = training.train(net, tr, va, epochs=1, cache=False, progress=False)
    enc = lw.LatentModel.from_model(result.model).encode_dataset(tr)
    print("LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), "LATENTS", enc.latents.shape)
    """
)


def test_import_train_and_encode_print_nothing_on_stderr() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _TRAIN_AND_ENCODE],
        cwd=REPO,
        env=_users_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LEVEL 3 LATENTS (16," in proc.stdout
    assert not tf_log_lines(proc.stderr), proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]


@pytest.mark.parametrize("level", ["0", "1"])
def test_a_log_level_the_user_set_is_kept(level: str) -> None:
    code = "import os, latent_widgets; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**_users_env(), "TF_CPP_MIN_LOG_LEVEL": level},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == level


def test_the_marker_filter_catches_the_lines_users_saw() -> None:
    seen = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795635948.614707   17425 cpu_feature_guard.cc:227] This TensorFlow binary is optimized
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow
E0000 00:00:1795635948.7 17425 mkl_util.h:1234] oneDNN supports DT_INT32 only on platforms with AVX-512
SegmentationDataset(12 samples, 48x64, 12 classes)"""
    assert len(tf_log_lines(seen)) == 3


_IMPORT = re.compile(r"^\s*(?:import|from)\s+(keras|tensorflow|latent_widgets)\b", re.MULTILINE)


def _first_imports(text: str) -> list[str]:
    """The top-level packages among keras, tensorflow and latent_widgets, in the order a file first imports them."""
    return list(dict.fromkeys(m.group(1) for m in _IMPORT.finditer(text)))


def _code_we_ship() -> dict[str, str]:
    files = {}
    for p in sorted(REPO.glob("notebooks/*.ipynb")):
        cells = json.loads(p.read_text())["cells"]
        files[p.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    # Test modules run after conftest.py, which imports the package first;
    # the harness writes the code that notebooks and Voila kernels run.
    for pattern in ("benchmarks/*.py", "docs/scripts/*.py", "tests/conftest.py", "tests/*harness*.py"):
        files.update({str(p.relative_to(REPO)): p.read_text() for p in sorted(REPO.glob(pattern))})
    return files


def test_the_code_we_ship_imports_latent_widgets_before_tensorflow() -> None:
    # On CPUs where TensorFlow turns oneDNN on (AVX512-VNNI, AVX-VNNI, AMX),
    # importing keras first starts TensorFlow before the package can turn
    # those operations off: a notebook that did so warned, logged and risked
    # the heap corruption on such machines only.
    assert _first_imports("import keras\nimport latent_widgets as lw\n") == ["keras", "latent_widgets"]
    shipped = _code_we_ship()
    late = {
        name: order
        for name, text in shipped.items()
        if (order := _first_imports(text))[:1] in (["keras"], ["tensorflow"])
    }
    assert not late, f"import latent_widgets before keras/tensorflow in: {late}"
