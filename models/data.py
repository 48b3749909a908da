"""FER2013 from its image-folder layout: cached uint8 arrays, splits and tf.data pipelines.

Every image goes through `emotion_batch.preprocess.preprocess_face`, the same path the worker
uses on face crops, so training and serving see identical 48x48 uint8 grey arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from emotion_batch.labels import EMOTIONS
from emotion_batch.preprocess import preprocess_face
from models.settings import data_settings

if TYPE_CHECKING:
    import tensorflow as tf

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_VERSION = 1


def default_data_dir() -> Path:
    """FER2013 folder: the FER2013_DIR setting (default ../shared/data/fer2013)."""
    return data_settings().fer2013_dir


def cache_dir() -> Path:
    """Where decoded arrays are cached (outside the repo): the EMOTION_BATCH_CACHE setting."""
    return data_settings().emotion_batch_cache


@dataclass(frozen=True)
class Split:
    """Images (N, 48, 48, 1) uint8 and integer labels (N,) indexing `classes`."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def counts(self) -> dict[str, int]:
        """Number of images per class name."""
        bins = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, bins)}


def _read_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode every PNG under folder/<emotion>/ through preprocess_face (one-off, then cached)."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(EMOTIONS):
        for path in sorted((folder / name).glob("*.png")):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise OSError(f"cannot decode {path}")
            images.append(preprocess_face(image))
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"no FER2013 images under {folder}")
    return np.stack(images)[..., None], np.asarray(labels, dtype=np.int64)


def _cache_file(folder: Path) -> Path:
    """Cache path keyed by the folder's absolute path and the cache format version."""
    key = hashlib.sha256(f"{folder.resolve()}|v{CACHE_VERSION}".encode()).hexdigest()[:16]
    return cache_dir() / f"fer2013-{folder.name}-{key}.npz"


def load_split(split: str, data_dir: Path | None = None, use_cache: bool = True) -> Split:
    """Load `train` or `test` with all 7 classes, from the .npz cache when present."""
    folder = (data_dir or default_data_dir()) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"FER2013 split folder not found: {folder}")
    cache = _cache_file(folder)
    if use_cache and cache.exists():
        with np.load(cache) as npz:
            return Split(npz["x"], npz["y"], EMOTIONS)
    x, y = _read_folder(folder)
    if use_cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(cache)
    return Split(x, y, EMOTIONS)


def select_classes(split: Split, classes: tuple[str, ...] | None) -> Split:
    """Keep only `classes` (names, any order) and renumber labels 0..k-1 in that order."""
    if not classes or tuple(classes) == split.classes:
        return split
    unknown = set(classes) - set(split.classes)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; known: {split.classes}")
    old = [split.classes.index(name) for name in classes]
    mapping = np.full(len(split.classes), -1, dtype=np.int64)
    mapping[old] = np.arange(len(classes))
    new_y = mapping[split.y]
    keep = new_y >= 0
    return Split(split.x[keep], new_y[keep], tuple(classes))


def stratified_split(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Carve a stratified validation set (val_fraction of each class) out of `split`."""
    rng = np.random.default_rng(seed)
    val_idx: list[np.ndarray] = []
    for label in range(len(split.classes)):
        idx = np.flatnonzero(split.y == label)
        rng.shuffle(idx)
        val_idx.append(idx[: int(round(len(idx) * val_fraction))])
    val_mask = np.zeros(len(split), dtype=bool)
    val_mask[np.concatenate(val_idx)] = True
    train = Split(split.x[~val_mask], split.y[~val_mask], split.classes)
    val = Split(split.x[val_mask], split.y[val_mask], split.classes)
    return train, val


def stratified_subset(split: Split, n: int, seed: int) -> Split:
    """A class-stratified random subset of about n images (for quick runs and tests)."""
    if n >= len(split):
        return split
    _, small = stratified_split(split, n / len(split), seed)
    return small


def class_weights(y: np.ndarray, n_classes: int, power: float = 0.5) -> dict[int, float]:
    """Inverse-frequency class weights, softened by `power` (1 = fully balanced), mean 1."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    raw = (counts.sum() / np.maximum(counts, 1.0) / n_classes) ** power
    raw = raw / (raw * counts).sum() * counts.sum()
    return {i: float(w) for i, w in enumerate(raw)}


def augmenter(seed: int) -> tf.keras.Sequential:
    """Random flip, rotation, shift, zoom, brightness, contrast and erasing on 0-255 floats."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 3),
            keras.layers.RandomBrightness(0.2, value_range=(0.0, 255.0), seed=seed + 4),
            keras.layers.RandomContrast(0.3, value_range=(0.0, 255.0), seed=seed + 5),
            keras.layers.RandomErasing(
                factor=0.5, scale=(0.02, 0.15), fill_value=0.0, value_range=(0.0, 255.0), seed=seed + 6
            ),
        ],
        name="augment",
    )


def crop_augmenter(seed: int) -> tf.keras.Sequential:
    """The crop recipe's augmentation of whole 48x48 faces, before the net's random 40x40
    view (`models.architecture.CropViews`): zoom 0.8-1.2 (a random resized crop), shift,
    flip, rotation +-10 degrees, random erasing."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomZoom((-0.2, 0.2), fill_mode="nearest", seed=seed),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomFlip("horizontal", seed=seed + 2),
            keras.layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed + 3),
            keras.layers.RandomErasing(
                factor=0.5, scale=(0.02, 0.25), fill_value=0.0, value_range=(0.0, 255.0), seed=seed + 4
            ),
        ],
        name="augment_crop",
    )


def _some(x: tf.Tensor, changed: tf.Tensor, share: float) -> tf.Tensor:
    """`changed` for a random `share` of the faces of batch `x`, `x` for the others."""
    import tensorflow as tf

    pick = tf.random.uniform([tf.shape(x)[0], 1, 1, 1]) < share
    return tf.where(pick, changed, x)


def _gaussian_blur(x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """A 5x5 Gaussian blur of (N, H, W, 1) faces (one sigma for the batch)."""
    import tensorflow as tf

    taps = tf.range(-2.0, 3.0)
    kernel = tf.exp(-(taps**2) / (2.0 * sigma**2))
    kernel /= tf.reduce_sum(kernel)
    x = tf.nn.conv2d(x, tf.reshape(kernel, [5, 1, 1, 1]), 1, "SAME")
    return tf.nn.conv2d(x, tf.reshape(kernel, [1, 5, 1, 1]), 1, "SAME")


def degrade_photos(x: tf.Tensor) -> tf.Tensor:
    """What a face cut from a real photo goes through, on 0-255 float (N, 48, 48, 1)
    batches: a small face scaled up (down to 16-36 px and back), focus blur, JPEG at
    quality 30-90, exposure (gamma) and contrast; each on a random share of the faces."""
    import tensorflow as tf

    side = tf.random.uniform([], 16, 37, dtype=tf.int32)
    small = tf.image.resize(x, tf.stack([side, side]), method="area")
    x = _some(x, tf.image.resize(small, tf.shape(x)[1:3], method="bilinear"), 0.3)
    x = _some(x, _gaussian_blur(x, tf.random.uniform([], 0.5, 1.3)), 0.25)
    jpeg = tf.map_fn(
        lambda face: tf.cast(tf.image.random_jpeg_quality(tf.cast(face, tf.uint8), 30, 90), tf.float32),
        tf.clip_by_value(x, 0.0, 255.0),
    )
    x = _some(x, tf.reshape(jpeg, tf.shape(x)), 0.5)
    gamma = tf.exp(tf.random.uniform([tf.shape(x)[0], 1, 1, 1], -0.4, 0.4))
    x = 255.0 * tf.pow(tf.clip_by_value(x, 0.0, 255.0) / 255.0, gamma)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], 0.7, 1.3)
    return tf.clip_by_value(mean + contrast * (x - mean), 0.0, 255.0)


def photo_augmenter(seed: int) -> Callable[..., tf.Tensor]:
    """The crop recipe's augmentation after `degrade_photos`."""
    geometric = crop_augmenter(seed)

    def augment(x: tf.Tensor, training: bool = True) -> tf.Tensor:
        return geometric(degrade_photos(x), training=training)

    return augment


AUGMENTERS: dict[str, Callable[[int], Callable[..., tf.Tensor]]] = {
    "v2": augmenter,
    "crop": crop_augmenter,
    "photo": photo_augmenter,
}


def mix_batch(x: tf.Tensor, y: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup (Zhang et al. 2018): face i becomes lam_i * face i + (1 - lam_i) * face j for a
    random partner j of the same batch, labels alike; lam_i ~ Beta(alpha, alpha), folded to
    >= 0.5 so every face stays mostly itself."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    a = tf.random.gamma([n], alpha)
    b = tf.random.gamma([n], alpha)
    lam = tf.maximum(a / (a + b + 1e-12), b / (a + b + 1e-12))
    partner = tf.random.shuffle(tf.range(n))
    lam_x = tf.cast(tf.reshape(lam, [-1, 1, 1, 1]), x.dtype)  # augmentation may run in bf16
    lam_y = tf.cast(tf.reshape(lam, [-1, 1]), y.dtype)
    mixed_x = lam_x * x + (1.0 - lam_x) * tf.gather(x, partner)
    mixed_y = lam_y * y + (1.0 - lam_y) * tf.gather(y, partner)
    return mixed_x, mixed_y


def make_dataset(
    split: Split,
    batch_size: int,
    training: bool,
    seed: int = 0,
    weights: dict[int, float] | None = None,
    one_hot: bool = False,
    mixup: float = 0.0,
    augment: str = "v2",
    targets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batched tf.data pipeline; when training: shuffled, augmented, with per-sample weights.

    `one_hot` yields (N, classes) float labels, as label smoothing needs; `mixup` > 0 (one-hot
    training batches only) blends each face and its label with another face of the batch.
    `targets` ((N, classes) float, e.g. a teacher's probabilities) replace the one-hot labels.
    """
    import tensorflow as tf

    n_classes = len(split.classes)
    labels = split.y if targets is None else targets
    ds = tf.data.Dataset.from_tensor_slices((split.x, labels))
    if training:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        aug = AUGMENTERS[augment](seed)
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    if weights is not None:
        table = tf.constant([weights[i] for i in range(len(weights))], dtype=tf.float32)
        ds = ds.map(lambda x, y: (x, y, tf.gather(table, y)))
    if one_hot or targets is not None:
        if targets is None:
            ds = ds.map(lambda x, y, *w: (x, tf.one_hot(y, n_classes), *w))
        if training and mixup > 0:
            ds = ds.map(lambda x, y, *w: (*mix_batch(x, y, mixup), *w))
    return ds.prefetch(tf.data.AUTOTUNE)
