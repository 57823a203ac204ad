"""Command-line entry point: ``latent-widgets``.

Examples
--------
.. code-block:: console

    $ latent-widgets data                      # summary of the embedded dataset
    $ latent-widgets data --camvid ../shared/camvid
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _load(args: argparse.Namespace):
    from .data import load_camvid
    from .synthetic import synthetic_road_scenes

    size = tuple(args.size)
    if args.camvid:
        return load_camvid(args.camvid, args.split, size=size)
    return synthetic_road_scenes(args.n, size=size, seed=args.seed)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camvid", metavar="DIR", help="a CamVid folder instead of the embedded synthetic scenes")
    p.add_argument("--split", default="train", help="CamVid split (train, val, test)")
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"), help="image size")
    p.add_argument("-n", type=int, default=240, help="number of synthetic samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes")


def cmd_data(args: argparse.Namespace) -> int:
    ds = _load(args)
    print(ds.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="latent-widgets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (
        ("data", cmd_data, "load a dataset and print its summary"),
        ("demo", cmd_data, "the main job on the embedded default"),
    ):
        p = sub.add_parser(name, help=help_)
        _add_data_args(p)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # our errors are ValueErrors whose message says the fix
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
