"""Faces per second of the emotion classifiers, batched: `python -m bench.classify_speed`.

Our CNN through every runtime in `emotion_batch.runtime` (tf.function, TFLite with 1 thread and
with all cores, and as the worker serves it: the card's runtime and flip setting) and, for
comparison, DeepFace's emotion architecture (the model found in DEEPFACE_HOME: here a
stand-in with DeepFace's architecture) through deepface's API.
Each cell: the median of `--repeats` timings of `--seconds` each, after a warm-up call.
Run it on an otherwise idle machine; the table says how many cores it saw.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from emotion_batch.runtime import (
    DEFAULT_MODEL,
    load_classifier_fn,
    load_keras,
    resolve_runtime,
    served_flip_tta,
    tf_classifier,
    tflite_classifier,
    with_flip_tta,
)
from models.evaluate import choose_deepface_home, deepface_home_option

Predict = Callable[[np.ndarray], np.ndarray]


def faces_per_second(predict: Predict, x: np.ndarray, seconds: float, repeats: int) -> float:
    """Median faces/s of predict(x) over `repeats` timed windows of about `seconds` each."""
    predict(x)
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            predict(x)
            n += len(x)
        rates.append(n / elapsed)
    return statistics.median(rates)


def our_runtimes(model_path: Path) -> dict[str, Predict]:
    """Our CNN: tf.function, and TFLite (if the .tflite file exists) with 1 and all threads."""
    runtimes: dict[str, Predict] = {"ours: tf.function": tf_classifier(load_keras(model_path))}
    tflite = model_path.with_suffix(".tflite")
    if tflite.exists():
        cores = len(os.sched_getaffinity(0))
        runtimes["ours: TFLite, 1 thread"] = tflite_classifier(tflite, threads=1)
        runtimes[f"ours: TFLite, {cores} threads"] = tflite_classifier(tflite, threads=cores)
        runtimes[f"ours: TFLite, {cores} threads, flip TTA"] = with_flip_tta(tflite_classifier(tflite, threads=cores))
    runtime, _ = resolve_runtime(model_path)
    flip = served_flip_tta(model_path)
    runtimes[f"ours as served ({runtime}{', flip TTA' if flip else ''}, as the worker loads it)"] = load_classifier_fn(
        model_path, flip_tta=flip
    )
    return runtimes


def deepface_runtimes(home: Path) -> dict[str, Predict]:
    """DeepFace's emotion model: as our deepface backend calls it, and through deepface's API."""
    from emotion_batch.classify.deepface import DeepFaceClassifier

    ours = DeepFaceClassifier(home)
    from deepface import DeepFace  # after DeepFaceClassifier handed it DEEPFACE_HOME

    client = DeepFace.build_model(task="facial_attribute", model_name="Emotion")

    def api(x: np.ndarray) -> np.ndarray:
        bgr = np.repeat(x.astype(np.float32) / 255.0, 3, axis=3)
        return client.predict(bgr if len(x) > 1 else bgr[0])

    return {
        "DeepFace arch (stand-in): our deepface backend (predict_on_batch)": ours.predict,
        "DeepFace arch (stand-in): client.predict (its preprocessing)": api,
    }


@click.command()
@click.option(
    "--model", "model_path", type=click.Path(path_type=Path, exists=True), default=DEFAULT_MODEL, show_default=True
)
@click.option("--batches", default="1,32,64,256", show_default=True)
@click.option("--seconds", default=1.5, show_default=True)
@click.option("--repeats", default=3, show_default=True)
@click.option("--deepface/--no-deepface", "with_deepface", default=True, show_default=True)
@deepface_home_option
def main(
    model_path: Path, batches: str, seconds: float, repeats: int, with_deepface: bool, deepface_home: Path | None
) -> None:
    """Print a faces/s table: one row per runtime, one column per batch size."""
    sizes = [int(b) for b in batches.split(",")]
    runtimes = our_runtimes(model_path)
    if with_deepface:
        runtimes.update(deepface_runtimes(choose_deepface_home(deepface_home)))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (max(sizes), 48, 48, 1), dtype=np.uint8)
    print(f"faces/s, median of {repeats} x {seconds}s, {len(os.sched_getaffinity(0))} cores")
    print("| runtime | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, predict in runtimes.items():
        cells = [f"{faces_per_second(predict, x[:b], seconds, repeats):,.0f}" for b in sizes]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
