"""TensorFlow's process-wide settings, applied before TensorFlow is imported.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it starts. With the
oneDNN custom operations on, TensorFlow 2.21 corrupts the heap in some CPU
kernels (tensorflow/tensorflow#117700 and #123109: batch matmul with rank-4
operands; users saw ``double free or corruption`` / ``free(): invalid
pointer`` aborts during DeepLabv3+ training on AMD EPYC). A corrupted heap
kills the Jupyter kernel and loses the user's session, so the package turns
those operations off unless the user chose a value. TensorFlow switches them
on by default only on CPUs with AVX512-VNNI/BF16, AVX-VNNI or AMX; elsewhere
this changes nothing.

TensorFlow's C++ side also logs to stderr as it starts and on first use:
``cpu_feature_guard`` ("This TensorFlow binary is optimized to use available
CPU instructions ... AVX2 FMA", an ``I0000`` line), absl's "WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR" that
precedes it, the oneDNN notices (``I0000 ... port.cc``, ``E0000 ... oneDNN
supports DT_INT32 only on platforms with AVX-512``) and the CUDA stub
messages on machines without a GPU. In a notebook they are red stderr
blocks; in the CLI they bury the summary. None can be caught from Python:
TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` when it starts, so the package sets
it to ``"3"`` (C++ errors and below silenced; fatal errors still print) unless
the user set a value. Set ``TF_CPP_MIN_LOG_LEVEL=0`` before importing the
package to see everything again. (``I0000 ... port.cc`` "oneDNN custom
operations are on" is printed before TensorFlow applies any level; it appears
only where the user turned oneDNN on with ``TF_ENABLE_ONEDNN_OPTS=1``.)

Examples
--------
>>> import os
>>> import latent_widgets  # applies the defaults
>>> os.environ["TF_ENABLE_ONEDNN_OPTS"] in {"0", "1", "true", "false", "True", "False"}
True
>>> os.environ["TF_CPP_MIN_LOG_LEVEL"] in {"0", "1", "2", "3"}
True
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["LOG_LEVEL_ENV", "ONEDNN_ENV", "QUIET_LOG_LEVEL", "configure_tensorflow_environment"]

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: Measured with TensorFlow 2.21 on CPU: "1" already hides the start-up
#: lines (I0000 cpu_feature_guard and absl's pre-init WARNING); the E0000
#: oneDNN and CUDA-stub lines need "3".
QUIET_LOG_LEVEL = "3"


def _onednn_enabled_in_running_tensorflow() -> bool:
    # Private, but the only way to ask TensorFlow once it has started; any
    # failure means "cannot tell", which must not break the import.
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:
        return False


def configure_tensorflow_environment() -> None:
    """Quiet TensorFlow's C++ logs and turn oneDNN's custom operations off, unless the user chose.

    Called when ``latent_widgets`` is imported. A value the user set for
    ``TF_CPP_MIN_LOG_LEVEL`` or ``TF_ENABLE_ONEDNN_OPTS`` is kept. If
    TensorFlow was imported first with oneDNN on, the setting can no longer
    take effect and a warning says how to fix it.

    Examples
    --------
    >>> configure_tensorflow_environment()  # idempotent
    """
    # Set even when TensorFlow is already imported: what this process starts
    # (Voila and its kernels, the CLI's subprocesses) inherits it.
    os.environ.setdefault(LOG_LEVEL_ENV, QUIET_LOG_LEVEL)
    if ONEDNN_ENV in os.environ:
        return
    if "tensorflow" in sys.modules:
        if _onednn_enabled_in_running_tensorflow():
            warnings.warn(
                "TensorFlow was imported before latent_widgets with oneDNN custom operations on; "
                "TensorFlow 2.21 can corrupt memory and kill the kernel with them (tensorflow#117700). "
                "Import latent_widgets first, or set TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow.",
                RuntimeWarning,
                stacklevel=3,
            )
        return
    os.environ[ONEDNN_ENV] = "0"
