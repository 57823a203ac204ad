"""ONNX Runtime settings of the library's sessions: how many threads, and no spinning between calls.

Examples
--------
>>> session_options(2).intra_op_num_threads  # doctest: +SKIP
2
"""

from __future__ import annotations

from typing import Any

__all__ = ["session_options"]


def session_options(threads: int) -> Any:
    """ONNX Runtime settings for the library's sessions: ``threads`` intra-op threads, no spinning.

    Idle pool threads do not spin (they would keep the cores of a notebook
    kernel busy between two slider moves), and one inter-op thread: the
    graph runs sequentially, its operators in parallel.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts
