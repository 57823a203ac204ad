"""The oneDNN guard: TensorFlow 2.21's oneDNN kernels corrupt the heap on some CPUs.

The crash (``double free or corruption`` during DeepLabv3+ training, exit 134)
depends on the CPU: TensorFlow turns its oneDNN custom operations on by
default only where it finds AVX512-VNNI/BF16, AVX-VNNI or AMX. The tests run
the reported case in a fresh interpreter with the environment a user has
(``TF_ENABLE_ONEDNN_OPTS`` unset) and check, on any CPU, that TensorFlow
started with those operations off.
"""

from __future__ import annotations

import os
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
        from latent_widgets import models, training

        train = lw.load_camvid({str(camvid_root)!r}, "train", size=(48, 64), progress=False)
        val = lw.load_camvid({str(camvid_root)!r}, "val", size=(48, 64), progress=False)
        net = models.deeplabv3_plus(train.n_classes, (48, 64, 3), backbone_width=0.125)
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
