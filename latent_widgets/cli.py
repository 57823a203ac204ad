"""Command-line entry point, ``latent-widgets``: the headless part of the workflow.

Every step is cached on disk (training, encoding, projections), so running a
later step repeats none of the earlier work.

Examples
--------
.. code-block:: console

    $ latent-widgets data                          # summary of the embedded dataset
    $ latent-widgets train --epochs 8              # SegNet on the synthetic scenes
    $ latent-widgets figures --out figs/           # maps, strip, triptych as PNG and SVG
    $ latent-widgets demo                          # all of the above, then serve the explorer
    $ latent-widgets demo --camvid ../shared/camvid
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["VOILA_KERNEL_OPTIONS", "explorer_notebook", "main", "voila_command"]


# ----------------------------------------------------------------------------
# the pipeline steps


def _datasets(args: argparse.Namespace) -> tuple[Any, Any]:
    from .data import load_dataset

    source = args.camvid or "synthetic"
    size = tuple(args.size)
    return (
        load_dataset(source, "train", size=size, n=args.n),
        load_dataset(source, "val", size=size, n=args.n),
    )


def _build(args: argparse.Namespace, n_classes: int) -> Any:
    from .model import zoo

    shape = (*args.size, 3)
    if args.model == "segnet":
        return zoo.segnet(n_classes=n_classes, input_shape=shape, width=args.width)
    return zoo.deeplabv3_plus(n_classes=n_classes, input_shape=shape, backbone_width=args.width)


def _trained(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(train data, val data, TrainResult, LatentModel) for the arguments."""
    from .model.latent_model import LatentModel
    from .model.training import train

    train_data, val_data = _datasets(args)
    result = train(
        _build(args, train_data.n_classes), train_data, val_data, epochs=args.epochs, learning_rate=args.learning_rate
    )
    return train_data, val_data, result, LatentModel.from_model(result.model)


def cmd_data(args: argparse.Namespace) -> int:
    train_data, val_data = _datasets(args)
    print(train_data.summary())
    print(f"validation: {val_data!r}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _, _, result, lm = _trained(args)
    print(result.history.iou_table())
    print(f"model: {result.path} ({'loaded from cache' if result.from_cache else 'trained'})")
    print(f"latent shape {lm.latent_shape}, skips {lm.skip_shapes}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np

    train_data, _, _, lm = _trained(args)
    encoding = lm.encode_dataset(train_data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "latents.npy", encoding.latents)
    for i, skip in enumerate(encoding.skips):
        np.save(out / f"skip_{i}.npy", skip)
    print(f"wrote {out / 'latents.npy'} {encoding.latents.shape}")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    import numpy as np

    from .analysis.projection import project

    train_data, _, _, lm = _trained(args)
    latents = lm.encode_dataset(train_data).latents
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        points = project(latents, method)
        path = out / f"{method}.csv"
        rows = np.column_stack([np.arange(len(points)), points])
        np.savetxt(path, rows, delimiter=",", header="index,x,y", comments="", fmt=["%d", "%.6g", "%.6g"])
        print(f"wrote {path}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from .study import write_study_figures

    train_data, _, _, lm = _trained(args)
    for path in write_study_figures(train_data, lm, Path(args.out)):
        print(f"wrote {path}")
    print((Path(args.out) / "findings.md").read_text())
    return 0


def explorer_notebook(args: argparse.Namespace) -> Any:
    """The notebook ``demo`` serves: the same cached steps, then the explorer."""
    import nbformat

    source = repr(args.camvid or "synthetic")
    width_arg = "width" if args.model == "segnet" else "backbone_width"
    code = f"""\
import latent_widgets as lw
from latent_widgets.model import zoo, training

SOURCE, SIZE, N = {source}, {tuple(args.size)!r}, {args.n}
EPOCHS, WIDTH, LR = {args.epochs}, {args.width}, {args.learning_rate}
train_data = lw.load_dataset(SOURCE, "train", size=SIZE, n=N, progress=False)
val_data = lw.load_dataset(SOURCE, "val", size=SIZE, n=N, progress=False)
build = zoo.{"segnet" if args.model == "segnet" else "deeplabv3_plus"}
net = build(n_classes=train_data.n_classes, input_shape=(*SIZE, 3), {width_arg}=WIDTH)
result = training.train(net, train_data, val_data, epochs=EPOCHS, learning_rate=LR, progress=False)  # cached: loads
lm = lw.LatentModel.from_model(result.model)
lw.LatentExplorer(lm, train_data)"""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# latent-widgets explorer\nClick a point, set A and B, drag alpha."),
        nbformat.v4.new_code_cell(code),
    ]
    return nb


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


#: How the demo's Voila frees the kernels (about 1 GB each, with TensorFlow
#: and a model) of pages that are gone.
#:
#: - Voila's page sends ``POST /voila/api/shutdown/<kernel>`` when it closes
#:   (``beforeunload``), with the ``_xsrf`` cookie as form field; standalone
#:   Voila 0.5 never sets that cookie, so the request fails with
#:   "'_xsrf' argument missing from POST" and the kernel lives on
#:   (voila-dashboards/voila#1458). ``disable_check_xsrf`` lets it through.
#:   This is safe here because the server binds 127.0.0.1 only and has no
#:   token or login to protect: XSRF is a foreign web page making the user's
#:   browser send a request, and the POST requests left to such a page are
#:   this shutdown, which needs the kernel's random UUID (no page can list or
#:   read them: Voila serves no kernel list, and the browser's same-origin
#:   rule hides responses), and Voila's kernels accept only widget messages.
#: - Kernels whose page vanished without saying so (a killed browser, a
#:   sleeping laptop) are culled after 10 idle minutes with no connection;
#:   a page left open keeps its kernel (``cull_connected=False``), so a user
#:   who reads the explorer for a while does not lose it.
VOILA_KERNEL_OPTIONS: tuple[str, ...] = (
    "--Voila.tornado_settings=disable_check_xsrf=True",
    "--MappingKernelManager.cull_idle_timeout=600",
    "--MappingKernelManager.cull_interval=60",
    "--MappingKernelManager.cull_connected=False",
)


def voila_command(notebook: str | Path, port: int, *, voila: str | None = None) -> list[str]:
    """The command line that serves ``notebook`` with Voila on ``127.0.0.1:port``, as ``demo`` runs it.

    Examples
    --------
    >>> cmd = voila_command("explorer.ipynb", 8866, voila="voila")
    >>> cmd[:4]
    ['voila', 'explorer.ipynb', '--no-browser', '--port=8866']
    >>> "--Voila.ip=127.0.0.1" in cmd and "--MappingKernelManager.cull_idle_timeout=600" in cmd
    True
    """
    if voila is None:
        voila = shutil.which("voila") or str(Path(sys.executable).with_name("voila"))
    return [
        voila,
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        *VOILA_KERNEL_OPTIONS,
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    import nbformat

    from .study import write_study_figures

    train_data, _, result, lm = _trained(args)
    print(train_data.summary())
    print(result.history.iou_table())
    out = Path(args.out)
    for path in write_study_figures(train_data, lm, out):
        print(f"wrote {path}")
    print((out / "findings.md").read_text())
    notebook = out / "explorer.ipynb"
    nbformat.write(explorer_notebook(args), notebook)
    if args.no_serve:
        print(f"wrote {notebook}; serve it with: voila {notebook}")
        return 0
    port = _free_port(args.port)
    print(f"\nServing the explorer at http://127.0.0.1:{port}/  (Ctrl-C to stop)\n", flush=True)
    cmd = voila_command(notebook, port)
    try:
        return subprocess.call(cmd, env=os.environ.copy())
    except KeyboardInterrupt:
        return 0


# ----------------------------------------------------------------------------
# argument parsing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latent-widgets", description="Explore the latent space of segmentation networks."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help_: str, *, model: bool = True, out: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--camvid", metavar="DIR", help="a CamVid folder instead of the embedded synthetic scenes")
        p.add_argument(
            "--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"), help="image size (default 96 128)"
        )
        p.add_argument("-n", type=int, default=240, help="number of synthetic training samples (default 240)")
        if model:
            p.add_argument("--model", choices=("segnet", "deeplabv3plus"), default="segnet")
            p.add_argument("--width", type=float, default=0.25, help="channel width multiplier (default 0.25)")
            p.add_argument("--epochs", type=int, default=24, help="training epochs (default 24)")
            p.add_argument("--learning-rate", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
        if out:
            p.add_argument("--out", default=out, help=f"output folder (default {out})")
        p.set_defaults(func=func)
        return p

    add("data", cmd_data, "load a dataset and print its summary", model=False)
    add("train", cmd_train, "train a zoo model (or load it from the cache)")
    add("encode", cmd_encode, "encode the training set, save latents.npy", out="latents")
    p = add("project", cmd_project, "2-D maps of the latents as CSV", out="maps")
    p.add_argument("--methods", nargs="+", default=["pca", "tsne", "umap"], choices=["pca", "tsne", "umap"])
    add("figures", cmd_figures, "the study's static figures as PNG and SVG", out="figures")
    p = add("demo", cmd_demo, "train, write figures, serve the explorer with Voila", out="demo-output")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--no-serve", action="store_true", help="write everything, do not start Voila")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # TensorFlow's C++ start-up chatter would bury the summary a user asked
    # for: importing the package set TF_CPP_MIN_LOG_LEVEL (see _tf_setup).
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # the package's errors are ValueErrors whose message says the fix
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
