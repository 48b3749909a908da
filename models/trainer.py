"""One training run on FER2013: build or resume the net, the datasets and the callbacks,
fit within the invocation's time budget, and summarise (`models.train` is its CLI).

The run folder holds last.keras, best.keras, state.json, history.csv and, with the weight
average, average.npz; `--resume` continues from it or, on a fresh clone, from the resume
point committed next to the model (models.export).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from emotion_batch.runtime import DEFAULT_MODEL
from models import data
from models.architecture import count_macs
from models.callbacks import run_callbacks
from models.config import TrainConfig, build_for, load_data
from models.export import read_history, resume_point_paths, write_history

if TYPE_CHECKING:
    import tensorflow as tf


def make_model(cfg: TrainConfig) -> keras.Model:
    """A freshly compiled model for the config: AdamW, label smoothing."""
    model = build_for(cfg)
    compile_model(model, cfg)
    return model


def compile_model(model: keras.Model, cfg: TrainConfig) -> None:
    """Compile with the run's optimizer and loss (one-hot labels, see `data.make_dataset`)."""
    optimizer: keras.optimizers.Optimizer
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
        )
    else:
        optimizer = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], weighted_metrics=[])


def cpu_has_bf16() -> bool:
    """Whether this CPU executes bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def setup_device(device: str, precision: str = "auto") -> str:
    """Pick CPU or GPU and the dtype policy; returns a short hardware description.

    precision "auto": mixed_float16 on a GPU, mixed_bfloat16 on a CPU with native bf16
    (measured 2x faster training here), else float32. Weights stay float32 either way.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    on_gpu = device != "cpu" and bool(gpus)
    if gpus and not on_gpu:
        tf.config.set_visible_devices([], "GPU")
    if precision == "auto":
        precision = "mixed_float16" if on_gpu else "mixed_bfloat16" if cpu_has_bf16() else "float32"
    keras.mixed_precision.set_global_policy(precision)
    if on_gpu:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"GPU: {name}, {precision}"
    return f"CPU only: {platform.processor() or platform.machine()}, {_cpu_count()} cores, {precision}"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resume_model(cfg: TrainConfig, run_dir: Path, committed: Path) -> tuple[keras.Model, dict, list[np.ndarray] | None]:
    """The model to continue, its state and its weight average: run_dir's last.keras (with
    the optimizer) and average.npz when there are, else the committed resume point next to
    the model (`<model>.resume.npz`: the last epoch's averaged weights, which seed both the
    model and the average; the optimizer's moments start afresh)."""
    if (run_dir / "last.keras").exists():
        state = json.loads((run_dir / "state.json").read_text())
        average = None
        if (run_dir / "average.npz").exists():
            with np.load(run_dir / "average.npz") as npz:
                average = [npz[f"w{i}"] for i in range(len(npz.files))]
        return keras.models.load_model(run_dir / "last.keras"), state, average
    point = resume_point_paths(committed)
    if not point["weights"].exists():
        raise FileNotFoundError(f"nothing to resume: no {run_dir / 'last.keras'} and no {point['weights']}")
    state = json.loads(point["state"].read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    write_history(run_dir / "history.csv", state.get("history", {}))
    model = make_model(cfg)
    with np.load(point["weights"]) as npz:
        weights = [npz[f"w{i}"].astype(np.float32) for i in range(len(npz.files))]
    model.set_weights(weights)
    return model, state, weights


def run_training(
    cfg: TrainConfig, run_dir: Path, resume: bool = False, verbose: int = 2, committed: Path | None = None
) -> dict:
    """Train (or resume) into run_dir; return a summary (best val accuracy, epochs, time)."""
    keras.utils.set_random_seed(cfg.init_seed or cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    train, val = load_data(cfg)
    average = None
    if resume:
        model, state, average = resume_model(cfg, run_dir, committed or DEFAULT_MODEL)
        keras.utils.set_random_seed((cfg.init_seed or cfg.seed) + state.get("epoch", 0))  # fresh shuffles
    else:
        model, state = make_model(cfg), {}
    initial_epoch, elapsed = state.get("epoch", 0), state.get("elapsed_s", 0.0)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    train_ds = training_dataset(cfg, train, run_dir)
    val_ds = data.make_dataset(val, 256, False, one_hot=True)
    if not (run_dir / "best.keras").exists():
        state["best"] = 0.0  # a fresh run folder (resumed from the committed point) needs one
    callbacks, budget = run_callbacks(cfg, run_dir, state, average, resume)
    start = time.monotonic()
    if initial_epoch < cfg.epochs:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
    return summarise(run_dir, len(train), len(val), elapsed + time.monotonic() - start, budget.stopped, model, cfg)


def training_dataset(cfg: TrainConfig, train: data.Split, run_dir: Path) -> tf.data.Dataset:
    """The augmented training pipeline: one-hot labels, or for a student the teachers'
    mean probabilities blended with them (cached in `run_dir`); class weights if asked."""
    weights = None
    if cfg.class_weight_power > 0:
        weights = data.class_weights(train.y, len(cfg.classes), cfg.class_weight_power)
    targets = None
    if cfg.teachers:
        from models.distill import distillation_targets, teacher_probabilities

        soft = teacher_probabilities(cfg.teachers, train.x, run_dir / "teachers.npz")
        targets = distillation_targets(soft, train.y, cfg.distill_alpha)
    seed = cfg.init_seed or cfg.seed
    return data.make_dataset(
        train, cfg.batch_size, True, seed, weights, one_hot=True, mixup=cfg.mixup, augment=cfg.augment, targets=targets
    )


def summarise(
    run_dir: Path, n_train: int, n_val: int, seconds: float, budget_hit: bool, model: keras.Model, cfg: TrainConfig
) -> dict:
    """Write history.json + summary.json from history.csv; return the summary."""
    history = read_history(run_dir / "history.csv")
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    best = int(np.argmax(history["val_accuracy"]))
    summary = {
        "epochs_run": len(history["epoch"]),
        "epochs_planned": cfg.epochs,
        "best_epoch": best + 1,
        "best_val_accuracy": history["val_accuracy"][best],
        "train_images": n_train,
        "val_images": n_val,
        "training_seconds": round(seconds, 1),
        "stopped_by_time_budget": budget_hit,
        "params": model.count_params(),
        "macs_per_face": count_macs(model),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
