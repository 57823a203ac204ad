"""Train a segmentation network on a :class:`~latent_widgets.data.SegmentationDataset`, cached on disk.

:func:`train` fits a Keras model with (class-balanced) cross-entropy,
evaluates per-class IoU on a validation set after every epoch and returns a
:class:`TrainResult` (``.model``, ``.history``, ``.from_cache``).

Trained models are cached as ``.keras`` files under
``cache_dir("models")`` (``$LATENT_WIDGETS_CACHE_DIR/models``), named by a
hash of the architecture, the data and the training settings: a second call
with the same inputs loads the model instead of training it. A truncated or
corrupt cache file is detected (it does not load), deleted and retrained.

Examples
--------
>>> from latent_widgets import load_camvid
>>> from latent_widgets.model.zoo import segnet
>>> from latent_widgets.model.training import train
>>> tr = load_camvid("../shared/camvid", "train", size=(96, 128))  # doctest: +SKIP
>>> va = load_camvid("../shared/camvid", "val", size=(96, 128))  # doctest: +SKIP
>>> result = train(segnet(12, (96, 128, 3), width=0.25), tr, va, epochs=20)  # doctest: +SKIP
>>> result.history.val_mean_iou[-1]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.arrays import iter_row_blocks

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from ..data.dataset import SegmentationDataset

__all__ = [
    "TrainHistory",
    "TrainResult",
    "TrainingError",
    "class_weights",
    "evaluate",
    "model_cache_key",
    "train",
]

# Bump when the training procedure changes in a way that changes results.
_TRAIN_VERSION = "train-v1"


class TrainingError(ValueError):
    """Training inputs that do not fit together; the message says why and how to fix it."""


@dataclass
class TrainHistory:
    """Per-epoch training curves and validation metrics.

    Attributes
    ----------
    loss : list of float
        Mean training loss per epoch (weighted cross-entropy).
    pixel_accuracy : list of float
        Training pixel accuracy per epoch (all pixels, augmented batches).
    val_pixel_accuracy : list of float
        Validation pixel accuracy per epoch (``ignore_class`` pixels left out).
    val_iou : list of list of float
        Validation IoU of every class per epoch; NaN where a class is in
        neither prediction nor ground truth, and for ``ignore_class``.
    val_mean_iou : list of float
        Mean of ``val_iou`` over the classes that are not NaN.
    seconds : list of float
        Wall time of each epoch (training and validation).
    class_names : list of str
    settings : dict
        The training settings (epochs, batch size, learning rate, ...).
    """

    loss: list[float] = field(default_factory=list)
    pixel_accuracy: list[float] = field(default_factory=list)
    val_pixel_accuracy: list[float] = field(default_factory=list)
    val_iou: list[list[float]] = field(default_factory=list)
    val_mean_iou: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.loss)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN becomes ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, list):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        return clean(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainHistory:
        """Inverse of :meth:`to_dict` (``None`` becomes NaN)."""

        def nan(v: Any) -> Any:
            if v is None:
                return float("nan")
            if isinstance(v, list):
                return [nan(x) for x in v]
            return v

        kwargs = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for k in ("loss", "pixel_accuracy", "val_pixel_accuracy", "val_iou", "val_mean_iou", "seconds"):
            kwargs[k] = nan(kwargs.get(k, []))
        return cls(**kwargs)

    def iou_table(self, epoch: int = -1) -> str:
        """Per-class validation IoU of one epoch (the last by default) as text."""
        if not self.val_iou:
            return "no validation data"
        rows = [f"{'class':<12} {'IoU':>6}"]
        for name, v in zip(self.class_names, self.val_iou[epoch], strict=False):
            rows.append(f"{name:<12} {'  -   ' if not np.isfinite(v) else f'{v:6.3f}'}")
        rows.append(f"{'mean':<12} {self.val_mean_iou[epoch]:6.3f}")
        return "\n".join(rows)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : keras.Model
        The trained model (compiled when just trained, uncompiled when
        loaded from the cache).
    history : TrainHistory
    from_cache : bool
        True when the model was loaded from the cache instead of trained.
    path : Path or None
        The cached ``.keras`` file (None with ``cache=False``).
    key : str
        The cache key (hash of architecture, data and settings).
    """

    model: keras.Model
    history: TrainHistory
    from_cache: bool
    path: Path | None
    key: str


# ----------------------------------------------------------------------------
# helpers


def class_weights(
    dataset: SegmentationDataset, method: str | None = "balanced", ignore_class: int | None = None
) -> np.ndarray:
    """Per-class loss weights, shape ``(n_classes,)``.

    Parameters
    ----------
    dataset : SegmentationDataset
    method : {"balanced", None}
        ``"balanced"``: median frequency balancing (Eigen & Fergus 2015, as in
        SegNet): ``w_c = median(f) / f_c`` with ``f_c`` the pixel frequency of
        class ``c`` in the images where it appears. ``None``: all ones.
    ignore_class : int, optional
        Gets weight 0 (e.g. CamVid's "Unlabelled", 11). Classes absent
        from the dataset get weight 0 too.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> class_weights(synthetic_road_scenes(4, size=(48, 64)), None).tolist()[:3]
    [1.0, 1.0, 1.0]
    """
    k = dataset.n_classes
    if method is None:
        w = np.ones(k, np.float32)
    elif method == "balanced":
        fractions = dataset.class_fractions()  # (N, k) pixel share per image
        pixels = fractions.sum(axis=0)
        images_with = (fractions > 0).sum(axis=0)
        present = images_with > 0
        if ignore_class is not None:
            present[ignore_class] = False
        freq = np.zeros(k)
        freq[present] = pixels[present] / images_with[present]
        w = np.zeros(k, np.float32)
        if present.any():
            w[present] = np.median(freq[present]) / freq[present]
    else:
        raise TrainingError(f"class_weighting must be 'balanced' or None, got {method!r}.")
    if ignore_class is not None:
        w[ignore_class] = 0.0
    return w.astype(np.float32)


def _canonical_config(model: Any) -> str:
    """The model's JSON config with layer names replaced by their positions.

    Keras names unnamed layers by a session counter (``conv2d_17``), which
    would make the same architecture hash differently from run to run.
    """
    text = model.to_json()
    names = [model.name] + [layer.name for layer in model.layers]
    mapping = {}
    for i, name in enumerate(names):
        mapping.setdefault(name, f"#layer{i}")
    pattern = re.compile("|".join(re.escape(json.dumps(n)) for n in sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: json.dumps(mapping[json.loads(m.group(0))]), text)


def model_cache_key(
    model: keras.Model,
    train_data: SegmentationDataset,
    val_data: SegmentationDataset | None,
    settings: dict[str, Any],
    initial_weights: bool = False,
) -> str:
    """The cache key of a training run: architecture, data, settings (and initial weights if used)."""
    from ..core.cache import content_hash

    weights = [np.asarray(w) for w in model.get_weights()] if initial_weights else None
    return content_hash(
        _TRAIN_VERSION,
        _canonical_config(model),
        weights,
        train_data.content_hash(),
        None if val_data is None else val_data.content_hash(),
        settings,
    )


def _at_input_size(probs: Any, x: Any) -> Any:
    """Probabilities resized bilinearly to the images' size when the network predicts smaller.

    The study's SegNet (:func:`latent_widgets.model.zoo.vgg_segnet`) outputs at
    half resolution; the masks, the loss and the metrics stay at the image size,
    as in :class:`latent_widgets.LatentModel`.
    """
    import tensorflow as tf

    if tuple(probs.shape[1:3]) == tuple(x.shape[1:3]):
        return probs
    return tf.image.resize(probs, tf.shape(x)[1:3], method="bilinear")


def _mask_fn(model: Any) -> Any:
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def run(x):
        return tf.argmax(_at_input_size(model(x, training=False), x), axis=-1, output_type=tf.int32)

    return run


def evaluate(
    model: keras.Model,
    data: SegmentationDataset,
    batch_size: int = 16,
    ignore_class: int | None = None,
    _fn: Any = None,
) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and mean IoU of ``model`` on ``data``.

    Parameters
    ----------
    model : keras.Model
        Maps images to per-pixel class scores.
    data : SegmentationDataset
    batch_size : int
    ignore_class : int, optional
        Pixels of this ground-truth class are left out; its IoU is NaN.

    Returns
    -------
    dict
        ``pixel_accuracy`` (float), ``iou`` (ndarray, NaN for classes absent
        from both), ``mean_iou`` (nanmean), ``majority_accuracy`` (pixel
        accuracy of always predicting the most frequent class of ``data``).

    Examples
    --------
    >>> evaluate(result.model, val, ignore_class=11)["mean_iou"]  # doctest: +SKIP
    """
    from ..analysis.metrics import iou_per_class

    fn = _fn if _fn is not None else _mask_fn(model)
    preds = np.concatenate([fn(data.images[rows]).numpy() for rows in iter_row_blocks(len(data), batch_size)])
    true = data.masks
    if ignore_class is not None:
        keep = true != ignore_class
        pred_k, true_k = preds[keep], true[keep]
    else:
        pred_k, true_k = preds.ravel(), true.ravel()
    iou = np.asarray(iou_per_class(pred_k, true_k, data.n_classes), dtype=np.float64)
    if ignore_class is not None:
        iou[ignore_class] = np.nan
    counts = np.bincount(true_k.astype(np.int64), minlength=data.n_classes)
    total = max(int(counts.sum()), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    return {
        "pixel_accuracy": float((pred_k == true_k).sum() / total),
        "iou": iou,
        "mean_iou": mean,
        "majority_accuracy": float(counts.max() / total),
    }


def _check_data(model: Any, data: SegmentationDataset, role: str) -> None:
    in_shape = tuple(model.inputs[0].shape[1:])
    out_classes = model.outputs[0].shape[-1]
    h, w = data.image_size
    if in_shape[:2] != (h, w) or in_shape[2] != data.images.shape[3]:
        raise TrainingError(
            f"{role} images are {h}x{w}x{data.images.shape[3]} but the model takes {in_shape}; build "
            f"the model with input_shape=({h}, {w}, 3) or load the data with size={in_shape[:2]}."
        )
    if out_classes != data.n_classes:
        raise TrainingError(
            f"the model outputs {out_classes} classes but {role} has {data.n_classes} "
            f"({', '.join(data.class_names)}); build the model with n_classes={data.n_classes}."
        )


def _epoch_batches(data: SegmentationDataset, batch_size: int, augment: bool, seed: int, epoch: int) -> Any:
    """Shuffled batches ``(x, y)`` with random horizontal flips, deterministic per (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(data))
    flips = rng.random(len(data)) < 0.5 if augment else np.zeros(len(data), bool)
    for rows in iter_row_blocks(len(data), batch_size):
        idx = np.sort(order[rows])  # sorted: faster fancy indexing
        x = data.images[idx]
        y = data.masks[idx].astype(np.int32)
        flip = flips[idx]
        if flip.any():
            x[flip] = x[flip, :, ::-1]
            y[flip] = y[flip, :, ::-1]
        yield x, y


def _loss_fn(net: Any) -> Any:
    """Per-pixel cross-entropy on the network's scores: from logits when it ends with a linear layer.

    Keras's default takes the scores for probabilities and renormalises them:
    logits (the TensorFlow tutorial's U-Net, keras-hub's segmenters) would
    train on a wrong loss without a word.
    """
    import keras

    from .keras_graph import ends_with_softmax

    return keras.losses.SparseCategoricalCrossentropy(from_logits=ends_with_softmax(net) is False)


def _train_step(net: Any, optimizer: Any, weights: np.ndarray) -> Any:
    """One compiled training step.

    A hand-written step rather than ``Model.fit``: on a CPU, ``fit`` traces
    its train function twice and costs ~3x more start-up time, which
    dominates short runs.
    """
    import tensorflow as tf

    loss_fn = _loss_fn(net)
    class_w = tf.constant(weights, tf.float32)
    variables = net.trainable_variables
    optimizer.build(variables)  # slots exist before tracing: a single trace

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            probs = _at_input_size(net(x, training=True), x)
            loss = loss_fn(y, probs, sample_weight=tf.gather(class_w, y))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=False))
        pred = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return loss, tf.reduce_mean(tf.cast(tf.equal(pred, y), tf.float32))

    return step


def _load_cached(path: Path, meta_path: Path, key: str) -> tuple[Any, TrainHistory] | None:
    import keras

    if not path.is_file() and not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            raise ValueError("history file belongs to another model")
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        history = TrainHistory.from_dict(meta["history"])
    except Exception as exc:  # any failure means the entry is unusable: retrain
        warnings.warn(
            f"cached model {path.name} could not be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
            "it is truncated or corrupt, retraining.",
            RuntimeWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return None
    return model, history


# ----------------------------------------------------------------------------
# training


def train(
    model: keras.Model,
    train_data: SegmentationDataset,
    val_data: SegmentationDataset | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    class_weighting: str | None = "balanced",
    ignore_class: int | None = None,
    augment: bool = True,
    reinitialize: bool = True,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``train_data``, or load the result of an identical earlier run.

    Parameters
    ----------
    model : keras.Model
        Images ``(N, H, W, 3)`` in 0..1 -> per-pixel class probabilities
        (e.g. :func:`latent_widgets.model.zoo.segnet`). It is not modified: a
        clone is trained.
    train_data, val_data : SegmentationDataset
        Validation data, if given, is evaluated after every epoch.
    epochs, batch_size, learning_rate : training settings (Adam optimiser).
    class_weighting : {"balanced", None}
        Loss weight per class: median frequency balancing or plain
        cross-entropy; see :func:`class_weights`.
    ignore_class : int, optional
        A "void" class left out of the loss and the metrics (CamVid: 11).
    augment : bool
        Random horizontal flips.
    reinitialize : bool
        True: train from fresh weights drawn with ``seed``, so the result
        depends only on the architecture, data and settings. False: start
        from the model's current weights (fine-tuning; they join the cache key).
    seed : int
        Seed of weight initialisation, shuffling and augmentation.
    cache : bool
        Load / store the trained model in ``cache_dir("models")``.
    progress : bool
        Show a progress bar (tqdm) over the training batches.

    Returns
    -------
    TrainResult
        ``.model``, ``.history`` (:class:`TrainHistory`), ``.from_cache``,
        ``.path``, ``.key``.

    Raises
    ------
    TrainingError
        Image size or class count of the data does not fit the model.

    Examples
    --------
    >>> result = train(segnet(12, (96, 128, 3), width=0.25), tr, va, epochs=20, ignore_class=11)  # doctest: +SKIP
    >>> print(result.history.iou_table())  # doctest: +SKIP
    """
    import keras

    from ..core.cache import atomic_path, cache_dir

    if not isinstance(model, keras.Model):
        raise TrainingError(f"model must be a keras.Model, got {type(model).__name__}.")
    _check_data(model, train_data, "train_data")
    if val_data is not None:
        _check_data(model, val_data, "val_data")
    if epochs < 1 or batch_size < 1:
        raise TrainingError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    if ignore_class is not None and not 0 <= ignore_class < train_data.n_classes:
        raise TrainingError(f"ignore_class={ignore_class} is not a class id (0..{train_data.n_classes - 1}).")
    weights = class_weights(train_data, class_weighting, ignore_class)

    settings = {
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "class_weighting": class_weighting,
        "ignore_class": ignore_class,
        "augment": bool(augment),
        "reinitialize": bool(reinitialize),
        "seed": int(seed),
    }
    key = model_cache_key(model, train_data, val_data, settings, initial_weights=not reinitialize)
    path = meta_path = None
    if cache:
        folder = cache_dir("models")
        stem = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model.name)}-{key[:24]}"
        path, meta_path = folder / f"{stem}.keras", folder / f"{stem}.json"
        hit = _load_cached(path, meta_path, key)
        if hit is not None:
            return TrainResult(hit[0], hit[1], True, path, key)

    keras.utils.set_random_seed(seed)
    net = keras.models.clone_model(model)  # fresh layers, initialised from the seed
    if not reinitialize:
        net.set_weights(model.get_weights())
    step = _train_step(net, keras.optimizers.Adam(learning_rate), weights)
    history = TrainHistory(class_names=list(train_data.class_names), settings=settings)
    mask_fn = _mask_fn(net)
    steps = math.ceil(len(train_data) / batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps, desc=f"training {model.name}", unit="batch")
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            loss_sum = acc_sum = 0.0
            for x, y in _epoch_batches(train_data, batch_size, augment, seed, epoch):
                loss, acc = step(x, y)
                loss_sum += float(loss) * len(x)
                acc_sum += float(acc) * len(x)
                if bar is not None:
                    bar.update(1)
            history.loss.append(loss_sum / len(train_data))
            history.pixel_accuracy.append(acc_sum / len(train_data))
            post = {"loss": f"{history.loss[-1]:.3f}", "acc": f"{history.pixel_accuracy[-1]:.3f}"}
            if val_data is not None:
                ev = evaluate(net, val_data, batch_size=max(batch_size, 16), ignore_class=ignore_class, _fn=mask_fn)
                history.val_pixel_accuracy.append(ev["pixel_accuracy"])
                history.val_iou.append([float(v) for v in ev["iou"]])
                history.val_mean_iou.append(ev["mean_iou"])
                post["val_mIoU"] = f"{ev['mean_iou']:.3f}"
            history.seconds.append(time.perf_counter() - t0)
            if bar is not None:
                bar.set_postfix(post)
    finally:
        if bar is not None:
            bar.close()

    if cache:
        assert path is not None and meta_path is not None
        # Model first, history last: a history file only exists for a complete model.
        with atomic_path(path) as tmp:
            net.save(tmp)
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps({"key": key, "history": history.to_dict()}, indent=1))
    return TrainResult(net, history, False, path, key)
