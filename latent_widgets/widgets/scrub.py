"""``MaskFrames``: the masks of a path on a fine alpha grid, swapped in the browser.

The package's only front-end code. The frames (uint8 class ids, one byte a
pixel) and the palette are sent once per path; the widget's ``alpha`` is
linked to the slider *in the browser* (``ipywidgets.jslink``), so dragging
the slider redraws a canvas from the frame nearest to alpha in the same
animation frame, with no kernel round trip. Each draw leaves
``data-frame``, ``data-alpha`` and ``data-drawn-at`` (``performance.now()``)
on the canvas for the browser tests and ``benchmarks/bench_browser.py``;
``data-frames`` is the number of decoded frames.

A partial grid (the session sends the frames nearest to the slider first)
marks its decoded frames in ``ready``: at an alpha whose frame is still to
come the canvas turns invisible (``data-frame`` empty), and the pane under
it, the kernel's decoded mask, shows through.
"""

from __future__ import annotations

from typing import Any

import anywidget
import numpy as np
import traitlets

__all__ = ["MaskFrames"]

_ESM = r"""
function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "lw-scrub-canvas";
  canvas.style.imageRendering = "pixelated";
  canvas.style.display = "block";
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  let frames = null, ready = null, images = [], last = -1;

  function bytes(name) {
    const v = model.get(name);
    return v ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : null;
  }
  function image(i) {
    // Palette lookup once per frame, then cached: later draws are a blit.
    if (!images[i]) {
      const w = canvas.width, h = canvas.height, pal = bytes("palette");
      const img = ctx.createImageData(w, h), px = img.data, off = i * w * h;
      for (let p = 0; p < w * h; p++) {
        const c = 3 * frames[off + p];
        px[4 * p] = pal[c]; px[4 * p + 1] = pal[c + 1]; px[4 * p + 2] = pal[c + 2]; px[4 * p + 3] = 255;
      }
      images[i] = img;
    }
    return images[i];
  }
  function draw() {
    const n = model.get("n_frames");
    if (!frames || n < 1) return;
    const alpha = model.get("alpha");
    const i = Math.max(0, Math.min(n - 1, Math.round(alpha * (n - 1))));
    if (ready && !ready[i]) {
      // Not decoded yet: never another alpha's frame; the kernel's mask under the canvas shows through.
      canvas.style.visibility = "hidden";
      canvas.dataset.frame = "";
    } else {
      if (i !== last) { ctx.putImageData(image(i), 0, 0); last = i; }
      canvas.style.visibility = "visible";
      canvas.dataset.frame = String(i);
    }
    canvas.dataset.alpha = String(alpha);
    canvas.dataset.drawnAt = String(performance.now());
  }
  function load() {
    const n = model.get("n_frames"), w = model.get("width"), h = model.get("height");
    frames = n > 0 ? bytes("frames") : null;
    const r = bytes("ready");
    ready = frames && r && r.length === n ? r : null;
    images = new Array(Math.max(n, 0));
    last = -1;
    canvas.width = Math.max(w, 1);
    canvas.height = Math.max(h, 1);
    canvas.style.width = model.get("display_width") + "px";
    canvas.dataset.frames = String(!frames ? 0 : ready ? ready.reduce((a, b) => a + b, 0) : n);
    draw();
  }
  model.on("change:alpha", draw);
  model.on("change:frames", load);
  model.on("change:ready", load);
  model.on("change:display_width", load);
  load();
}
export default { render };
"""


class MaskFrames(anywidget.AnyWidget):
    """A canvas that shows the frame of a mask sequence nearest to ``alpha``.

    Parameters
    ----------
    palette : ndarray (n_classes, 3) uint8
    display_width : int
        Width of the canvas in px (the masks are upscaled without smoothing).

    Examples
    --------
    >>> import numpy as np
    >>> w = MaskFrames(np.array([[0, 0, 0], [255, 0, 0]], np.uint8))
    >>> w.set_frames(np.zeros((4, 6, 8), np.uint8)); (w.n_frames, w.height, w.width, len(w.frames))
    (4, 6, 8, 192)
    >>> w.set_frames(np.zeros((4, 6, 8), np.uint8), ready=[True, False, False, True]); w.n_ready
    2
    """

    _esm = _ESM
    frames = traitlets.Bytes(b"").tag(sync=True)
    #: One byte per frame, 1 where it is decoded; empty: all are (a complete grid).
    ready = traitlets.Bytes(b"").tag(sync=True)
    n_ready = traitlets.Int(0)
    palette = traitlets.Bytes(b"").tag(sync=True)
    n_frames = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    alpha = traitlets.Float(0.0).tag(sync=True)
    display_width = traitlets.Int(256).tag(sync=True)

    def __init__(self, palette: np.ndarray, display_width: int = 256, **kwargs: object) -> None:
        pal = np.zeros((256, 3), np.uint8)
        given = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
        pal[: len(given)] = given
        super().__init__(palette=pal.tobytes(), display_width=display_width, **kwargs)

    def set_frames(self, masks: np.ndarray | None, ready: Any = None) -> None:
        """Send a mask sequence (G, H, W) of class ids < 256, or clear it (None).

        ``ready``: one bool per frame, False for frames not decoded yet (a
        partial grid; the canvas is invisible at their alphas); None: all are.
        """
        with self.hold_sync():
            if masks is None:
                self.n_frames, self.n_ready, self.frames, self.ready = 0, 0, b"", b""
                return
            m = np.ascontiguousarray(masks, np.uint8)
            r = None if ready is None else np.asarray(ready, bool).reshape(-1)
            if r is not None and len(r) != len(m):
                raise ValueError(f"ready has {len(r)} flags for {len(m)} frames")
            self.height, self.width = int(m.shape[1]), int(m.shape[2])
            self.n_frames = len(m)
            self.n_ready = len(m) if r is None else int(r.sum())
            self.ready = b"" if r is None or r.all() else r.astype(np.uint8).tobytes()
            self.frames = m.tobytes()
