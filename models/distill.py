"""Soft targets from an ensemble of trained nets, for distilling it into one served net.

`python -m models.train --teacher A.keras --teacher B.keras ...` trains a student on
`alpha * teachers' mean probabilities + (1 - alpha) * the label` (Hinton et al. 2015): the
ensemble's accuracy, one net's serving cost. Each teacher reads the faces as it is served
(a VGG member averages its ten views inside its graph); the targets are computed once per
run on the un-augmented training faces and cached in the run folder under the teachers'
sha256, so a resumed run reuses them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emotion_batch.runtime import load_classifier_fn, tf_classifier
from emotion_batch.sidecar import sha256_of
from models.evaluate import predict_batched
from models.export import load_member, member_weights_path


def teacher_fn(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A teacher as served: a .keras file, or an exported ensemble member (its .best.npz)."""
    if path.suffix == ".keras" and path.exists():
        return load_classifier_fn(path, "tf")
    return tf_classifier(load_member(path.with_suffix(".keras")))


def teachers_key(teachers: tuple[str, ...]) -> str:
    """A digest of the teachers' weights files, in order."""
    digest = hashlib.sha256()
    for name in teachers:
        path = Path(name)
        if not (path.suffix == ".keras" and path.exists()):
            path = member_weights_path(path.with_suffix(".keras"))
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()[:16]


def teacher_probabilities(teachers: tuple[str, ...], faces: np.ndarray, cache: Path) -> np.ndarray:
    """The teachers' mean probabilities for `faces` ((N, 48, 48, 1) uint8), from `cache`
    when it holds those of the same teachers and faces."""
    key = f"{teachers_key(teachers)}-{hashlib.sha256(faces.tobytes()).hexdigest()[:16]}"
    if cache.exists():
        with np.load(cache) as npz:
            if str(npz["key"]) == key:
                return np.asarray(npz["probs"])
    total = np.zeros((len(faces), 0), dtype=np.float64)
    for path in teachers:
        probs = predict_batched(teacher_fn(Path(path)), faces).astype(np.float64)
        total = probs if total.size == 0 else total + probs
    mean = (total / len(teachers)).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache.with_suffix(".tmp.npz"), key=key, probs=mean)
    cache.with_suffix(".tmp.npz").replace(cache)
    return mean


def distillation_targets(soft: np.ndarray, labels: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * the teachers' probabilities + (1 - alpha) * the one-hot labels."""
    hard = np.eye(soft.shape[1], dtype=np.float32)[labels]
    return (alpha * soft + (1.0 - alpha) * hard).astype(np.float32)
