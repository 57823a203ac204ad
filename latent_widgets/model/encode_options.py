"""How a dataset is encoded into a latent store: one object for the options every step of the encode passes on.

``LatentModel.encode_dataset(...)`` and
:func:`~latent_widgets.latents.distributed.encode_on_cluster` take these as
keyword arguments and build one :class:`EncodeOptions`; the steps under
them (:func:`~latent_widgets.latents.encode.encode_to_store`,
:func:`~latent_widgets.latents.encode.prepare_store`,
:meth:`~latent_widgets.latents.store.LatentStore.create`,
:func:`~latent_widgets.latents.distributed.submit_encode`) take the object.
It sits in the model layer, the lowest that encodes a dataset.

Examples
--------
>>> from latent_widgets.model.encode_options import EncodeOptions
>>> EncodeOptions(batch_size=0, store_skips=True)
EncodeOptions(batch_size=1, chunk_rows=None, store_skips=True, resume=True, overwrite=False)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EncodeOptions"]


@dataclass(frozen=True)
class EncodeOptions:
    """What an encode into a latent store writes, and what it does with a store already there.

    How the encode reports (``progress``, ``on_batch``) is not part of it:
    the same options encode with or without a bar.

    Attributes
    ----------
    batch_size : int
        Images per encoder call (at least 1; smaller values are raised to 1).
    chunk_rows : int, optional
        Rows per store chunk, the unit of writing and resuming, a multiple of
        ``batch_size``. None: about 2 MiB of rows (on a cluster, smaller when
        the workers would get fewer than 4 tasks each). A store that is
        resumed keeps its own.
    store_skips : bool
        Keep the skip features on disk too (they are often 10-100x the
        latents); otherwise they are re-encoded when read.
    resume : bool
        Continue a partly written store; ``False`` re-encodes every chunk.
    overwrite : bool
        Replace a store that belongs to another model or dataset (otherwise
        that raises).

    Examples
    --------
    >>> import dataclasses
    >>> dataclasses.replace(EncodeOptions(batch_size=8), chunk_rows=64).chunk_rows
    64
    """

    batch_size: int = 32
    chunk_rows: int | None = None
    store_skips: bool = False
    resume: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        # Every step used max(1, int(batch_size)); done once here.
        object.__setattr__(self, "batch_size", max(1, int(self.batch_size)))
