"""Load the trained emotion CNN as a plain function: uint8 faces in, float32 probabilities out.

    classify = load_classifier_fn("models/emotion_cnn.keras")
    probs = classify(preprocess_faces(crops))   # (N, 48, 48, 1) uint8 -> (N, 7) float32

Runtimes (see `bench/classify_speed.py` for the measured speeds):
- "tf": the Keras model called through a `tf.function` with a fixed input signature
  (`model.predict()` costs ~50 ms per call and is never used);
- "tflite": the exported `emotion_cnn.tflite` (same weights, batch norm folded) run by
  `tf.lite.Interpreter`; predictions match "tf" within 1e-4 (tested).
"auto" uses the runtime named in the model's sidecar, else "tf" (`resolve_runtime` says which
runtime and file). `flip_tta=True` averages each face with its mirror image (+0.75 points of
test accuracy for v2, half the throughput; see models/README.md).
Load in the process that will use it (e.g. after a Celery pool has forked).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emotion_batch.defaults import CNN_MODEL
from emotion_batch.preprocess import FACE_SIZE
from emotion_batch.sidecar import read_sidecar

ClassifierFn = Callable[[np.ndarray], np.ndarray]
DEFAULT_MODEL = CNN_MODEL  # the one default path, emotion_batch.defaults (CNN_MODEL setting)
RUNTIMES = ("tf", "tflite")


def _check_batch(faces: np.ndarray) -> np.ndarray:
    """Validate an (N, 48, 48, 1) batch and return it as contiguous uint8."""
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
        raise ValueError(f"expected (N, 48, 48, 1) faces, got {faces.shape}")
    if faces.dtype != np.uint8:
        raise TypeError(f"expected uint8 faces (grey 0-255), got {faces.dtype}")
    return np.ascontiguousarray(faces)


def tf_classifier(model: Any) -> ClassifierFn:
    """Wrap a Keras model in a tf.function taking uint8 (None, 48, 48, 1) batches."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, FACE_SIZE, FACE_SIZE, 1), tf.uint8, name="faces")

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def forward(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(tf.cast(x, tf.float32), training=False), tf.float32)

    n_out = int(model.output_shape[-1])

    def classify(faces: np.ndarray) -> np.ndarray:
        faces = _check_batch(faces)
        if len(faces) == 0:
            return np.zeros((0, n_out), dtype=np.float32)
        return forward(faces).numpy()

    classify.forward = forward  # type: ignore[attr-defined]  # for export
    return classify


def tflite_classifier(path: Path, threads: int | None = None) -> ClassifierFn:
    """Run an exported .tflite model (uint8 input) with tf.lite.Interpreter."""
    import tensorflow as tf

    threads = threads or len(os.sched_getaffinity(0))
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (TF 2.21 keeps it)
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    inp = interpreter.get_input_details()[0]["index"]
    out_detail = interpreter.get_output_details()[0]
    state = {"n": -1}

    def classify(faces: np.ndarray) -> np.ndarray:
        faces = _check_batch(faces)
        if len(faces) == 0:
            return np.zeros((0, int(out_detail["shape"][-1])), dtype=np.float32)
        if state["n"] != len(faces):
            interpreter.resize_tensor_input(inp, list(faces.shape), strict=False)
            interpreter.allocate_tensors()
            state["n"] = len(faces)
        interpreter.set_tensor(inp, faces)
        interpreter.invoke()
        return interpreter.get_tensor(out_detail["index"]).astype(np.float32, copy=True)

    return classify


def load_keras(path: Path) -> Any:
    """Load a .keras model without its optimizer (our layers registered by `emotion_batch.layers`)."""
    import keras

    import emotion_batch.layers  # noqa: F401  (registers MirrorFaces, CropViews, AverageViews)

    return keras.models.load_model(path, compile=False)


def resolve_runtime(path: str | Path = DEFAULT_MODEL, runtime: str = "auto") -> tuple[str, Path]:
    """The runtime `load_classifier_fn` will use and the weights file it will read."""
    path = Path(path)
    if runtime == "auto":
        runtime = read_sidecar(path).get("runtime", "tf")
        if runtime == "tflite" and not path.with_suffix(".tflite").exists():
            runtime = "tf"
    return runtime, path.with_suffix(".tflite") if runtime == "tflite" else path


def served_flip_tta(path: str | Path = DEFAULT_MODEL, setting: bool | None = None) -> bool:
    """Whether faces are averaged with their mirror image at run time: the setting when
    given (CNN_FLIP_TTA), else the model card's `serve_flip_tta` (default true). An ensemble
    whose members already read both views (models.ensemble) says false."""
    if setting is not None:
        return setting
    return bool(read_sidecar(Path(path)).get("serve_flip_tta", True))


def served_temperature(path: str | Path = DEFAULT_MODEL) -> float:
    """The temperature the model card says its served probabilities are calibrated with
    (`serve_temperature`, fitted by `python -m models.calibrate`; 1.0 when absent)."""
    return float(read_sidecar(Path(path)).get("serve_temperature", 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities sharpened (T < 1) or softened (T > 1): p^(1/T), renormalised."""
    if temperature == 1.0:
        return np.asarray(probs, dtype=np.float32)
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    scaled = np.exp(logp)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def with_temperature(classify: ClassifierFn, temperature: float) -> ClassifierFn:
    """`classify` with its probabilities calibrated by `temperature` (1.0: unchanged)."""
    if temperature == 1.0:
        return classify

    def calibrated(faces: np.ndarray) -> np.ndarray:
        return apply_temperature(classify(faces), temperature)

    return calibrated


def with_flip_tta(classify: ClassifierFn) -> ClassifierFn:
    """Average the probabilities of each face and its mirror image (2x the compute)."""

    def tta(faces: np.ndarray) -> np.ndarray:
        faces = _check_batch(faces)
        mirrored = np.ascontiguousarray(faces[:, :, ::-1, :])
        return (0.5 * (classify(faces) + classify(mirrored))).astype(np.float32)

    return tta


def shifted(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Faces moved by (dx, dy) pixels, the uncovered edge repeating the border."""
    n, h, w, c = faces.shape
    pad = max(abs(dx), abs(dy))
    padded = np.pad(faces, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w, :])


def with_ten_view_tta(classify: ClassifierFn, shift: int = 3) -> ClassifierFn:
    """Average 10 views of each face: itself and 4 shifts by `shift` pixels, each also
    mirrored (ten-crop averaging for a 48x48 input; 10x the compute)."""
    moves = [(0, 0), (shift, 0), (-shift, 0), (0, shift), (0, -shift)]

    def tta(faces: np.ndarray) -> np.ndarray:
        faces = _check_batch(faces)
        total: np.ndarray | None = None
        for dx, dy in moves:
            view = shifted(faces, dx, dy) if (dx or dy) else faces
            for v in (view, np.ascontiguousarray(view[:, :, ::-1, :])):
                probs = classify(v)
                total = probs if total is None else total + probs
        assert total is not None
        return np.asarray(total / (2 * len(moves)), dtype=np.float32)

    return tta


def load_classifier_fn(
    path: str | Path = DEFAULT_MODEL,
    runtime: str = "auto",
    flip_tta: bool = False,
    threads: int | None = None,
    temperature: float = 1.0,
) -> ClassifierFn:
    """Load the classifier: (N, 48, 48, 1) uint8 -> (N, n_labels) float32 probabilities.

    `path` is the .keras file; the .tflite runtime reads the file of the same stem next to it.
    `flip_tta` averages each face with its mirror image: +0.75 points of test accuracy for
    v2 (+1.6 for v1) at half the throughput (see models/README.md). `threads` is the TFLite interpreter's
    thread count (None: every core this process may use); the "tf" runtime follows the
    process-wide TensorFlow setting (`emotion_batch.tfsetup.configure_tensorflow`).
    `temperature` calibrates the final (view-averaged) probabilities (`served_temperature`).
    """
    classify = _load(Path(path), runtime, threads)
    return with_temperature(with_flip_tta(classify) if flip_tta else classify, temperature)


def _load(path: Path, runtime: str, threads: int | None = None) -> ClassifierFn:
    """The plain classifier for one runtime ("auto" reads the sidecar)."""
    runtime, _ = resolve_runtime(path, runtime)
    if runtime == "tf":
        return tf_classifier(load_keras(path))
    if runtime == "tflite":
        return tflite_classifier(path.with_suffix(".tflite"), threads)
    raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES} or 'auto'")
