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

Examples
--------
>>> import os
>>> import latent_widgets  # applies the defaults
>>> os.environ["TF_ENABLE_ONEDNN_OPTS"] in {"0", "1", "true", "false", "True", "False"}
True
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["ONEDNN_ENV", "configure_tensorflow_environment"]

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def _onednn_enabled_in_running_tensorflow() -> bool:
    # Private, but the only way to ask TensorFlow once it has started; any
    # failure means "cannot tell", which must not break the import.
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:
        return False


def configure_tensorflow_environment() -> None:
    """Turn oneDNN's custom operations off unless the user set ``TF_ENABLE_ONEDNN_OPTS``.

    Called when ``latent_widgets`` is imported. A value the user set is
    kept. If TensorFlow was imported first with oneDNN on, the setting can no
    longer take effect and a warning says how to fix it.

    Examples
    --------
    >>> configure_tensorflow_environment()  # idempotent
    """
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
