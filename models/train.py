"""Train the emotion CNN on FER2013: `python -m models.train --help`.

Best checkpoint on validation accuracy, early stopping, warm-up + cosine learning rate
(which also follows a wall-clock budget, see `BudgetCosine`), fixed seeds, resumable
runs, a `--max-minutes` budget that stops at an epoch boundary and keeps the best model.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import keras
import numpy as np

from models import data
from models.architecture import build_model, count_macs
from models.labels import EMOTIONS
from models.sidecar import sha256_of, write_sidecar

DEFAULT_RUN_DIR = data.cache_dir() / "runs" / "emotion_cnn"
DEFAULT_MODEL = Path(__file__).resolve().parent / "emotion_cnn.keras"


@dataclass
class TrainConfig:
    """Everything that defines a run (saved with it, reused on --resume)."""

    data_dir: str
    classes: tuple[str, ...] = EMOTIONS
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    max_minutes: float = 0.0
    patience: int = 15
    val_fraction: float = 0.1
    subset: int = 0
    seed: int = 1234
    widths: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.4
    class_weight_power: float = 0.5
    extra: dict = field(default_factory=dict)


class BudgetCosine(keras.callbacks.Callback):
    """Linear warm-up then cosine decay; progress = max(epoch share, wall-clock share).

    When a `--max-minutes` budget binds, the rate still reaches ~0 by the end of the
    budget instead of being cut off half-way down the cosine.
    """

    def __init__(self, cfg: TrainConfig, elapsed_before: float = 0.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.start = time.monotonic() - elapsed_before

    def rate(self, epoch: int) -> float:
        """Learning rate for `epoch` (0-based)."""
        if epoch < self.cfg.warmup_epochs:
            return self.cfg.lr * (epoch + 1) / (self.cfg.warmup_epochs + 1)
        progress = epoch / self.cfg.epochs
        if self.cfg.max_minutes > 0:
            progress = max(progress, (time.monotonic() - self.start) / (60 * self.cfg.max_minutes))
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * min(progress, 1.0)))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(self.rate(epoch))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate.numpy())


class TimeBudget(keras.callbacks.Callback):
    """Stop at an epoch boundary when another epoch would overrun the budget."""

    def __init__(self, minutes: float, elapsed_before: float = 0.0) -> None:
        super().__init__()
        self.budget = 60 * minutes
        self.start = time.monotonic() - elapsed_before
        self.epoch_start = time.monotonic()
        self.stopped = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        if self.budget > 0 and (now - self.start) + (now - self.epoch_start) > self.budget:
            self.stopped = True
            self.model.stop_training = True


class RunState(keras.callbacks.Callback):
    """After each epoch: save last.keras and state.json (epoch, elapsed) for --resume."""

    def __init__(self, run_dir: Path, elapsed_before: float = 0.0, best: float = 0.0) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.best = best
        self.start = time.monotonic() - elapsed_before

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.model.save(self.run_dir / "last.keras")
        self.best = max(self.best, float((logs or {}).get("val_accuracy", 0.0)))
        state = {"epoch": epoch + 1, "elapsed_s": time.monotonic() - self.start,
                 "best": self.best}
        (self.run_dir / "state.json").write_text(json.dumps(state))


def load_data(cfg: TrainConfig) -> tuple[data.Split, data.Split]:
    """Train/validation splits (stratified, fixed seed) for the configured classes/subset."""
    full = data.select_classes(data.load_split("train", Path(cfg.data_dir)), cfg.classes)
    train, val = data.stratified_split(full, cfg.val_fraction, cfg.seed)
    if cfg.subset:
        train = data.stratified_subset(train, cfg.subset, cfg.seed)
        val = data.stratified_subset(val, max(cfg.subset // 5, len(cfg.classes) * 4), cfg.seed)
    return train, val


def make_model(cfg: TrainConfig) -> keras.Model:
    """A freshly compiled model for the config."""
    model = build_model(len(cfg.classes), widths=tuple(cfg.widths), dropout=cfg.dropout)
    optimizer = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=[])
    return model


def setup_device(device: str) -> str:
    """Pick CPU or GPU; mixed precision on GPU. Returns a short hardware description."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" or not gpus:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return f"CPU only: {platform.processor() or platform.machine()}, {_cpu_count()} cores"
    keras.mixed_precision.set_global_policy("mixed_float16")
    return f"GPU: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_training(cfg: TrainConfig, run_dir: Path, resume: bool = False,
                 verbose: int = 2) -> dict:
    """Train (or resume) into run_dir; return a summary (best val accuracy, epochs, time)."""
    keras.utils.set_random_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    train, val = load_data(cfg)
    state = json.loads((run_dir / "state.json").read_text()) if resume else {}
    initial_epoch, elapsed = state.get("epoch", 0), state.get("elapsed_s", 0.0)
    model = keras.models.load_model(run_dir / "last.keras") if resume else make_model(cfg)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    weights = data.class_weights(train.y, len(cfg.classes), cfg.class_weight_power)
    train_ds = data.make_dataset(train, cfg.batch_size, True, cfg.seed, weights)
    val_ds = data.make_dataset(val, 256, False)
    budget = TimeBudget(cfg.max_minutes, elapsed)
    callbacks = [
        BudgetCosine(cfg, elapsed), budget, RunState(run_dir, elapsed, state.get("best", 0.0)),
        keras.callbacks.ModelCheckpoint(run_dir / "best.keras", monitor="val_accuracy",
                                        save_best_only=True, mode="max",
                                        initial_value_threshold=state.get("best")),
        keras.callbacks.EarlyStopping("val_accuracy", patience=cfg.patience, mode="max"),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
    ]
    start = time.monotonic()
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=verbose)
    return summarise(run_dir, len(train), len(val), elapsed + time.monotonic() - start,
                     budget.stopped, model)


def summarise(run_dir: Path, n_train: int, n_val: int, seconds: float, budget_hit: bool,
              model: keras.Model) -> dict:
    """Write history.json + summary.json from history.csv; return the summary."""
    history = read_history(run_dir / "history.csv")
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    best = int(np.argmax(history["val_accuracy"]))
    summary = {
        "epochs_run": len(history["epoch"]), "best_epoch": best + 1,
        "best_val_accuracy": history["val_accuracy"][best], "train_images": n_train,
        "val_images": n_val, "training_seconds": round(seconds, 1),
        "stopped_by_time_budget": budget_hit, "params": model.count_params(),
        "macs_per_face": count_macs(model),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def read_history(path: Path) -> dict[str, list[float]]:
    """CSVLogger file -> {column: [values]} (keeps the last row per epoch after resumes)."""
    import csv

    rows: dict[int, dict[str, str]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows[int(row["epoch"])] = row
    keys = list(next(iter(rows.values())).keys()) if rows else []
    return {k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="FER2013 folder (default: $FER2013_DIR or ../shared/data/fer2013).")
@click.option("--run-dir", type=click.Path(path_type=Path), default=DEFAULT_RUN_DIR,
              show_default=True, help="Checkpoints, history and state for --resume.")
@click.option("--model-out", type=click.Path(path_type=Path), default=DEFAULT_MODEL,
              show_default=True, help="Where the best model (+ .json sidecar) is exported.")
@click.option("--epochs", default=60, show_default=True)
@click.option("--max-minutes", default=0.0, show_default=True, help="Time budget, 0 = none.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--classes", default=",".join(EMOTIONS), show_default=True,
              help="Comma-separated subset, e.g. happy,sad,neutral.")
@click.option("--subset", default=0, show_default=True, help="Use ~N training images (quick runs).")
@click.option("--widths", default="16,32,64,128", show_default=True)
@click.option("--seed", default=1234, show_default=True)
@click.option("--patience", default=15, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto",
              show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from last.keras.")
@click.option("--export-only", is_flag=True,
              help="Only export --run-dir's best.keras (+ .tflite, sidecar) to --model-out.")
def main(data_dir: Path | None, run_dir: Path, model_out: Path, epochs: int,
         max_minutes: float, batch_size: int, lr: float, classes: str, subset: int,
         widths: str, seed: int, patience: int, device: str, resume: bool,
         export_only: bool) -> None:
    """Train the emotion CNN on FER2013 and export the best checkpoint."""
    hardware = setup_device(device)
    cfg = TrainConfig(
        data_dir=str(data_dir or data.default_data_dir()), epochs=epochs, batch_size=batch_size,
        lr=lr, classes=tuple(c.strip() for c in classes.split(",") if c.strip()), subset=subset,
        widths=tuple(int(w) for w in widths.split(",")), seed=seed, patience=patience,
        max_minutes=max_minutes)
    if resume or export_only:
        saved = json.loads((run_dir / "config.json").read_text())
        overrides = {} if export_only else {"epochs": epochs, "max_minutes": max_minutes}
        cfg = TrainConfig(**{**saved, **overrides})
    if export_only:
        summary = json.loads((run_dir / "summary.json").read_text())
    else:
        summary = run_training(cfg, run_dir, resume)
    summary.setdefault("hardware", hardware)
    export(run_dir, model_out, cfg, summary)
    click.echo(json.dumps(summary, indent=1))


def export(run_dir: Path, model_out: Path, cfg: TrainConfig, summary: dict) -> None:
    """Copy best.keras and its history next to model_out, export .tflite, write the sidecar."""
    from models.runtime import export_tflite

    model_out.parent.mkdir(parents=True, exist_ok=True)
    best = keras.models.load_model(run_dir / "best.keras", compile=False)
    best.save(model_out)  # without the optimizer state: a third of the size
    shutil.copyfile(run_dir / "history.json", model_out.with_suffix(".history.json"))
    tflite = export_tflite(model_out)
    write_sidecar(model_out, {
        "labels": list(cfg.classes), "runtime": "tflite", "tflite": tflite.name,
        "tflite_sha256": sha256_of(tflite),
        "training_data": {"dataset": f"FER2013 train/ ({cfg.data_dir})",
                          "validation": f"{cfg.val_fraction:.0%} of train/, stratified, "
                                        f"seed {cfg.seed}",
                          "train_images": summary["train_images"],
                          "val_images": summary["val_images"], "subset": cfg.subset},
        "training": {**summary, "config": asdict(cfg)},
    })


if __name__ == "__main__":
    main()
