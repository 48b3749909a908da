"""Train the emotion CNN on FER2013: `python -m models.train --help`.

One long schedule (warm-up + cosine over `--epochs`) that several invocations complete:
each stops at an epoch boundary within its `--max-minutes` and `--resume` continues where
the last one stopped, from the run folder or, on a fresh clone, from the resume point
committed next to the model. Mixed precision (bf16 on CPUs that have it, float16 on GPUs),
AdamW with an exponential moving average of the weights (validation, the best checkpoint
and the export use the average), label smoothing, augmentation with random erasing, no
class weights unless asked; best checkpoint on validation accuracy, fixed seeds.
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
from models.architecture import build_model, build_vgg, count_macs
from models.labels import EMOTIONS
from models.runtime import DEFAULT_MODEL
from models.sidecar import read_sidecar, sha256_of, write_sidecar

DEFAULT_RUN_DIR = data.cache_dir() / "runs" / "emotion_cnn_resnet"


@dataclass
class TrainConfig:
    """Everything that defines a run (saved with it, reused on --resume)."""

    data_dir: str
    classes: tuple[str, ...] = EMOTIONS
    epochs: int = 100
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: int = 3
    max_minutes: float = 0.0
    patience: int = 0
    val_fraction: float = 0.1
    subset: int = 0
    seed: int = 1234
    init_seed: int = 0
    mixup: float = 0.0
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (2, 2, 2)
    dropout: float = 0.4
    class_weight_power: float = 0.0
    label_smoothing: float = 0.1
    ema_momentum: float = 0.999
    precision: str = "auto"
    arch: str = "resnet"
    crop: int = 40
    dense: tuple[int, ...] = (1024, 1024)
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "cosine"
    plateau_factor: float = 0.75
    plateau_patience: int = 5
    augment: str = "v2"
    teachers: tuple[str, ...] = ()
    distill_alpha: float = 0.7
    extra: dict = field(default_factory=dict)

    @classmethod
    def recipe(cls, name: str, **overrides: object) -> TrainConfig:
        """A named recipe's config with `overrides`: "v2" (the served ResNet's) or "vgg"
        (Khaireddin & Chen's: VGG on 40x40 crops read as ten views, SGD with Nesterov
        momentum, learning rate x0.75 after 5 epochs without a better validation score).
        The VGG's stages are half the published widths (64-512): on a CPU without bf16 the
        published net trains at a quarter of the speed (models/README.md); `--widths
        64,128,256,512` restores it where there is a GPU."""
        recipes: dict[str, dict[str, object]] = {
            "v2": {},
            "vgg": {
                "arch": "vgg",
                "widths": (32, 64, 128, 256),
                "dropout": 0.2,
                "optimizer": "sgd",
                "lr": 0.01,
                "weight_decay": 1e-4,
                "schedule": "plateau",
                "warmup_epochs": 0,
                "label_smoothing": 0.0,
                "augment": "crop",
                "epochs": 150,
            },
        }
        return cls(**{**recipes[name], **overrides})  # type: ignore[arg-type]

    @classmethod
    def from_saved(cls, saved: dict, **overrides: object) -> TrainConfig:
        """A config saved as JSON (lists where the fields are tuples), with `overrides`."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
        return cls(**{**fields, **overrides})  # type: ignore[arg-type]


class CosineSchedule(keras.callbacks.Callback):
    """Linear warm-up, then cosine decay to 0 at `cfg.epochs`: one schedule for the whole
    planned run, however many invocations (`--resume`) it takes to get there."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def rate(self, epoch: int) -> float:
        """Learning rate for `epoch` (0-based)."""
        if epoch < self.cfg.warmup_epochs:
            return self.cfg.lr * (epoch + 1) / (self.cfg.warmup_epochs + 1)
        span = max(self.cfg.epochs - self.cfg.warmup_epochs, 1)
        progress = min((epoch - self.cfg.warmup_epochs) / span, 1.0)
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * progress))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(self.rate(epoch))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate.numpy())


class PlateauSchedule(keras.callbacks.Callback):
    """Learning rate times `factor` once validation accuracy has not improved for `patience`
    epochs (Keras's ReduceLROnPlateau, with its state kept in `state` so that `--resume`
    continues the same schedule: the rate, the best score and the epochs waited)."""

    def __init__(self, cfg: TrainConfig, state: dict | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.state = {"lr": cfg.lr, "best": 0.0, "wait": 0, **(state or {})}

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(self.state["lr"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        score = float((logs or {}).get("val_accuracy", 0.0))
        if score > self.state["best"]:
            self.state.update(best=score, wait=0)
        else:
            self.state["wait"] += 1
            if self.state["wait"] >= self.cfg.plateau_patience:
                self.state.update(lr=self.state["lr"] * self.cfg.plateau_factor, wait=0)
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate.numpy())


class TimeBudget(keras.callbacks.Callback):
    """Stop at an epoch boundary when another epoch would overrun this invocation's budget."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.budget = 60 * minutes
        self.start = time.monotonic()
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
    """After each epoch: last.keras (raw weights + optimizer state) and state.json (epoch,
    time, best validation accuracy, weight-average updates) for `--resume`."""

    def __init__(
        self,
        run_dir: Path,
        elapsed_before: float = 0.0,
        best: float = 0.0,
        average: WeightAverage | None = None,
        schedule: PlateauSchedule | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.best = best
        self.average = average
        self.schedule = schedule
        self.start = time.monotonic() - elapsed_before

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.model.save(self.run_dir / "last.keras")
        self.best = max(self.best, float((logs or {}).get("val_accuracy", 0.0)))
        state: dict[str, object] = {
            "epoch": epoch + 1,
            "elapsed_s": round(time.monotonic() - self.start, 1),
            "best": self.best,
            "average_updates": self.average.updates if self.average else 0,
        }
        if self.schedule is not None:
            state["plateau"] = dict(self.schedule.state)
        (self.run_dir / "state.json").write_text(json.dumps(state))


class WeightAverage(keras.callbacks.Callback):
    """Exponential moving average of every model weight, batch-norm statistics included.

    Keras's own optimizer EMA averages only trainable weights; paired with the raw model's
    batch-norm statistics the averaged net collapsed to one class here (25% validation
    accuracy against 45% for the raw weights after 3 epochs). Averaging the statistics too,
    as timm's ModelEma does, keeps the pair consistent. The momentum warms up
    (min(m, (1 + n) / (10 + n)) over n updates) so early weights do not linger.
    Validation runs on the average; `best.keras` holds the best average; `average.npz` in
    the run folder carries it across `--resume`.
    """

    def __init__(
        self,
        run_dir: Path,
        momentum: float,
        every: int = 4,
        updates: int = 0,
        best: float = 0.0,
        initial: list[np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.run_dir, self.momentum, self.every = run_dir, momentum, every
        self.updates, self.best, self.initial = updates, best, initial
        self.average: list = []
        self._swapped = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        import tensorflow as tf

        if self.average:
            return
        start = self.initial or [v.numpy() for v in self.model.weights]
        self.average = [
            tf.Variable(np.asarray(w, dtype=v.dtype), trainable=False) for w, v in zip(start, self.model.weights)
        ]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch % self.every:
            return
        n = self.updates
        m = min(self.momentum**self.every, (1 + n) / (10 + n))
        for avg, var in zip(self.average, self.model.weights):
            avg.assign(m * avg + (1.0 - m) * var.value)
        self.updates += 1

    def _swap(self) -> None:
        for avg, var in zip(self.average, self.model.weights):
            raw = var.numpy()
            var.assign(avg.numpy())
            avg.assign(raw)
        self._swapped = not self._swapped

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self.average and not self._swapped:
            self._swap()

    def on_test_end(self, logs: dict | None = None) -> None:
        if self._swapped:
            self._swap()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        arrays = {f"w{i}": a.numpy() for i, a in enumerate(self.average)}
        np.savez(self.run_dir / "average.tmp.npz", **arrays)
        (self.run_dir / "average.tmp.npz").replace(self.run_dir / "average.npz")
        accuracy = float((logs or {}).get("val_accuracy", 0.0))
        if accuracy > self.best:
            self.best = accuracy
            self._swap()
            try:
                self.model.save(self.run_dir / "best.keras")
            finally:
                self._swap()
        if logs is not None:
            logs["average_updates"] = self.updates

    def arrays(self) -> list[np.ndarray]:
        """The averaged weights, in `model.weights` order."""
        return [a.numpy() for a in self.average]


def load_data(cfg: TrainConfig) -> tuple[data.Split, data.Split]:
    """Train/validation splits (stratified, fixed seed) for the configured classes/subset."""
    full = data.select_classes(data.load_split("train", Path(cfg.data_dir)), cfg.classes)
    train, val = data.stratified_split(full, cfg.val_fraction, cfg.seed)
    if cfg.subset:
        train = data.stratified_subset(train, cfg.subset, cfg.seed)
        val = data.stratified_subset(val, max(cfg.subset // 5, len(cfg.classes) * 4), cfg.seed)
    return train, val


def build_for(cfg: TrainConfig) -> keras.Model:
    """The configured architecture under the current dtype policy (uncompiled)."""
    if cfg.arch == "vgg":
        return build_vgg(
            len(cfg.classes), widths=tuple(cfg.widths), crop=cfg.crop, dense=tuple(cfg.dense), dropout=cfg.dropout
        )
    return build_model(len(cfg.classes), widths=tuple(cfg.widths), blocks=tuple(cfg.blocks), dropout=cfg.dropout)


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


def resume_point_paths(model_out: Path) -> dict[str, Path]:
    """Committed resume files next to the exported model."""
    return {"weights": model_out.with_suffix(".resume.npz"), "state": model_out.with_suffix(".resume.json")}


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
    weights = (
        data.class_weights(train.y, len(cfg.classes), cfg.class_weight_power) if cfg.class_weight_power > 0 else None
    )
    targets = None
    if cfg.teachers:  # distillation: the teachers' mean probabilities blended with the labels
        from models.distill import distillation_targets, teacher_probabilities

        soft = teacher_probabilities(cfg.teachers, train.x, run_dir / "teachers.npz")
        targets = distillation_targets(soft, train.y, cfg.distill_alpha)
    train_ds = data.make_dataset(
        train,
        cfg.batch_size,
        True,
        cfg.init_seed or cfg.seed,
        weights,
        one_hot=True,
        mixup=cfg.mixup,
        augment=cfg.augment,
        targets=targets,
    )
    val_ds = data.make_dataset(val, 256, False, one_hot=True)
    budget = TimeBudget(cfg.max_minutes)
    if not (run_dir / "best.keras").exists():
        state["best"] = 0.0  # a fresh run folder (resumed from the committed point) needs one
    average_cb = None
    plateau = PlateauSchedule(cfg, state.get("plateau")) if cfg.schedule == "plateau" else None
    callbacks: list[keras.callbacks.Callback] = [plateau or CosineSchedule(cfg), budget]
    if cfg.ema_momentum > 0:  # validation and best.keras use the averaged weights
        average_cb = WeightAverage(
            run_dir,
            cfg.ema_momentum,
            updates=state.get("average_updates", 0),
            best=state.get("best", 0.0),
            initial=average,
        )
        callbacks.append(average_cb)
    else:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                run_dir / "best.keras",
                monitor="val_accuracy",
                save_best_only=True,
                mode="max",
                initial_value_threshold=state.get("best"),
            )
        )
    callbacks.append(RunState(run_dir, elapsed, state.get("best", 0.0), average_cb, plateau))
    callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume))
    if cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=cfg.patience, mode="max"))
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


def read_history(path: Path) -> dict[str, list[float]]:
    """CSVLogger file -> {column: [values]} (keeps the last row per epoch after resumes)."""
    import csv

    rows: dict[int, dict[str, str]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows[int(row["epoch"])] = row
    keys = list(next(iter(rows.values())).keys()) if rows else []
    return {k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """The inverse of `read_history`: a CSVLogger file (nothing when history is empty)."""
    import csv

    if not history or not history.get("epoch"):
        return
    keys = list(history)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for i in range(len(history["epoch"])):
            writer.writerow([int(history[k][i]) if k == "epoch" else history[k][i] for k in keys])


@click.command()
@click.option(
    "--recipe",
    type=click.Choice(["v2", "vgg"]),
    default="v2",
    show_default=True,
    help="Defaults of every training option below: v2's ResNet or the VGG on 40x40 crops (SGD, plateau).",
)
@click.option(
    "--teacher",
    "teachers",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Distil: a trained .keras net or an exported --member; the student learns the mean "
    "probabilities of every --teacher.",
)
@click.option(
    "--distill-alpha",
    default=0.7,
    show_default=True,
    help="Share of the teachers' probabilities in the targets; the rest is the label.",
)
@click.option("--crop", default=40, show_default=True, help="VGG: side of the views cut from the 48x48 face.")
@click.option("--dense", default="1024,1024", show_default=True, help="VGG: units of the dense layers.")
@click.option(
    "--augment",
    type=click.Choice(["v2", "crop", "photo"]),
    default="v2",
    show_default=True,
    help="Augmentation: v2's; the crop recipe's (zoom 0.8-1.2, shift, flip, rotation 10 deg, erasing); "
    "photo: the crop recipe's after a real photo's degradations (scaled-up small faces, blur, JPEG, exposure).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="FER2013 folder (default: $FER2013_DIR or ../shared/data/fer2013).",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RUN_DIR,
    show_default=True,
    help="Checkpoints, history and state for --resume.",
)
@click.option(
    "--model-out",
    type=click.Path(path_type=Path),
    default=DEFAULT_MODEL,
    show_default=True,
    help="Where the best model (+ .json sidecar) is exported.",
)
@click.option(
    "--epochs",
    default=100,
    show_default=True,
    help="Length of the whole planned schedule (warm-up + cosine), across resumes.",
)
@click.option(
    "--max-minutes",
    default=0.0,
    show_default=True,
    help="Budget of this invocation, 0 = none; stops at an epoch boundary.",
)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--weight-decay", default=0.01, show_default=True)
@click.option("--label-smoothing", default=0.1, show_default=True)
@click.option(
    "--ema",
    "ema_momentum",
    default=0.999,
    show_default=True,
    help="Momentum of the weight average used for validation and export; 0 = off.",
)
@click.option(
    "--class-weight-power",
    default=0.0,
    show_default=True,
    help="Inverse-frequency class weights ^ power (0 = none, 1 = balanced).",
)
@click.option(
    "--classes", default=",".join(EMOTIONS), show_default=True, help="Comma-separated subset, e.g. happy,sad,neutral."
)
@click.option("--subset", default=0, show_default=True, help="Use ~N training images (quick runs).")
@click.option("--widths", default="32,64,128,256", show_default=True)
@click.option("--blocks", default="2,2,2", show_default=True, help="Residual blocks per stage.")
@click.option("--dropout", default=0.4, show_default=True)
@click.option(
    "--seed", default=1234, show_default=True, help="Seed of the validation split (and of the rest unless --init-seed)."
)
@click.option(
    "--init-seed",
    default=0,
    show_default=True,
    help="Seed of initialisation, shuffling and augmentation, 0 = --seed: another member of an "
    "ensemble trains on the same split with different weights.",
)
@click.option(
    "--mixup",
    default=0.0,
    show_default=True,
    help="Mixup alpha (each face blended with another of its batch, labels alike), 0 = off.",
)
@click.option("--patience", default=0, show_default=True, help="Early stopping, 0 = off.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on a CPU that has it, float16 on a GPU.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the schedule: --run-dir's last.keras, else the committed <model-out>.resume.npz.",
)
@click.option(
    "--export-only", is_flag=True, help="Only export --run-dir's best.keras (+ .tflite, sidecar) to --model-out."
)
@click.option(
    "--min-gain",
    default=0.01,
    show_default=True,
    help="Replace the served model only when validation accuracy beats it by this much "
    "(2,872 validation faces: one point is about 29 faces, the noise of one comparison).",
)
@click.option(
    "--member",
    is_flag=True,
    help="An ensemble member or teacher, never served: its best weights are kept in float16 "
    "(<model-out>.best.npz, loaded by models.train.load_member) beside its resume point.",
)
@click.option(
    "--force-export",
    is_flag=True,
    help="Export even when the served model did better on the validation split "
    "(by default it is replaced only by a better one).",
)
def main(
    run_dir: Path,
    model_out: Path,
    device: str,
    resume: bool,
    export_only: bool,
    member: bool,
    force_export: bool,
    min_gain: float,
    **options: object,
) -> None:
    """Train the emotion CNN on FER2013 and export the best checkpoint."""
    cfg = config_from_cli(click.get_current_context(), options)
    if resume or export_only:
        cfg = resumed_config(cfg, run_dir, model_out, export_only)
    hardware = setup_device(device, cfg.precision)
    if export_only:
        summary = json.loads((run_dir / "summary.json").read_text())
    else:
        summary = run_training(cfg, run_dir, resume, committed=model_out)
        summary["hardware"] = hardware
    served = read_sidecar(model_out).get("training", {}).get("best_val_accuracy", 0.0)
    if member:
        export_member(run_dir, model_out, cfg, summary)
    elif export_only or force_export or summary["best_val_accuracy"] >= served + min_gain:
        export(run_dir, model_out, cfg, summary)
    else:  # the schedule goes on; the served model stays until a clearly better one exists
        write_resume_point(run_dir, model_out, cfg, summary)
        click.echo(
            f"kept the served {model_out.name}: this run's best validation accuracy "
            f"{summary['best_val_accuracy']:.2%} is not {min_gain:.1%} above its {served:.2%}; "
            "resume point written"
        )
    click.echo(json.dumps(summary, indent=1))


CLI_TUPLES = {"classes": str, "widths": int, "blocks": int, "dense": int}
CLI_LISTS = ("teachers",)  # options given several times


def config_from_cli(ctx: click.Context, options: dict[str, object]) -> TrainConfig:
    """The run's config: the named recipe's, with the options given on the command line
    (not those left at their defaults) on top."""
    recipe = str(options.pop("recipe"))
    given: dict[str, object] = {}
    for name, value in options.items():
        if ctx.get_parameter_source(name) in (None, click.core.ParameterSource.DEFAULT):
            continue
        if name in CLI_TUPLES and isinstance(value, str):
            value = tuple(CLI_TUPLES[name](w.strip()) for w in value.split(",") if w.strip())
        if name in CLI_LISTS:
            value = tuple(str(v) for v in value)  # type: ignore[attr-defined]
        given[name] = value
    data_dir = given.pop("data_dir", None) or data.default_data_dir()
    return TrainConfig.recipe(recipe, data_dir=str(data_dir), **given)


def resumed_config(cfg: TrainConfig, run_dir: Path, model_out: Path, export_only: bool) -> TrainConfig:
    """The saved run's config (run_dir, else the committed resume point), with this
    invocation's data folder and budget (and, for --resume, a new planned length)."""
    saved_file = run_dir / "config.json"
    if not saved_file.exists():
        saved_file = resume_point_paths(model_out)["state"]
    saved = json.loads(saved_file.read_text())
    overrides: dict[str, object] = {"data_dir": cfg.data_dir, "max_minutes": cfg.max_minutes}
    if not export_only:
        overrides["epochs"] = cfg.epochs
    return TrainConfig.from_saved(saved.get("config", saved), **overrides)


def build_float32(cfg: TrainConfig) -> keras.Model:
    """The configured architecture built under the float32 policy, whatever the current one."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return build_for(cfg)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def float32_copy(model: keras.Model, cfg: TrainConfig) -> keras.Model:
    """The same architecture built under float32 with the weights copied (cast): a model
    trained under a mixed policy serves (and converts to TFLite) in float32."""
    plain = build_float32(cfg)
    plain.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    return plain


def export(run_dir: Path, model_out: Path, cfg: TrainConfig, summary: dict) -> None:
    """Export best.keras (float32) + its history + .tflite + sidecar next to model_out, and
    the resume point (last epoch's averaged weights, float16, + state) for `--resume`."""
    from models.runtime import export_tflite

    model_out.parent.mkdir(parents=True, exist_ok=True)
    best = keras.models.load_model(run_dir / "best.keras", compile=False)
    float32_copy(best, cfg).save(model_out)  # without the optimizer state
    shutil.copyfile(run_dir / "history.json", model_out.with_suffix(".history.json"))
    train_split, _ = load_data(cfg)
    tflite = export_tflite(model_out, representative=train_split.x)
    write_resume_point(run_dir, model_out, cfg, summary)
    config = {**asdict(cfg), "data_dir": Path(cfg.data_dir).name}  # no machine's absolute path
    write_sidecar(
        model_out,
        {
            "labels": list(cfg.classes),
            "runtime": "tflite",
            "tflite": tflite.name,
            "tflite_sha256": sha256_of(tflite),
            "tflite_quantization": "int8",
            "training_data": {
                "dataset": "FER2013 train/",
                "validation": f"{cfg.val_fraction:.0%} of train/, stratified, seed {cfg.seed}",
                "train_images": summary["train_images"],
                "val_images": summary["val_images"],
                "subset": cfg.subset,
            },
            "training": {**summary, "config": config},
        },
    )


def member_weights_path(model_out: Path) -> Path:
    """`<model>.best.npz`: an ensemble member's best weights, float16."""
    return model_out.with_suffix(".best.npz")


def export_member(run_dir: Path, model_out: Path, cfg: TrainConfig, summary: dict) -> None:
    """A member's best weights (float16, a third of a .keras file's size), its history,
    sidecar and resume point next to model_out; no .keras or .tflite file is written."""
    model_out.parent.mkdir(parents=True, exist_ok=True)
    best = keras.models.load_model(run_dir / "best.keras", compile=False)
    arrays = {f"w{i}": np.asarray(w, dtype=np.float16) for i, w in enumerate(best.get_weights())}
    np.savez_compressed(member_weights_path(model_out), **arrays)  # type: ignore[arg-type]
    shutil.copyfile(run_dir / "history.json", model_out.with_suffix(".history.json"))
    write_resume_point(run_dir, model_out, cfg, summary)
    config = {**asdict(cfg), "data_dir": Path(cfg.data_dir).name}
    fields = {"role": "ensemble member (not served)", "weights": member_weights_path(model_out).name}
    sidecar = {**fields, "training": {**summary, "config": config}}
    model_out.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")


def load_member(model_out: Path) -> keras.Model:
    """An exported member (`export_member`) rebuilt under float32 with its best weights."""
    saved = json.loads(model_out.with_suffix(".json").read_text())["training"]["config"]
    model = build_float32(TrainConfig.from_saved(saved))
    with np.load(member_weights_path(model_out)) as npz:
        model.set_weights([npz[f"w{i}"].astype(np.float32) for i in range(len(npz.files))])
    return model


def write_resume_point(run_dir: Path, model_out: Path, cfg: TrainConfig, summary: dict) -> None:
    """`<model>.resume.npz`: the last epoch's weights (averaged when on) in float16, a few MB;
    `<model>.resume.json`: epoch reached, elapsed time, best, the config, the history."""
    last_path = run_dir / "last.keras"
    if not last_path.exists():
        return
    weights = keras.models.load_model(last_path).get_weights()
    if (run_dir / "average.npz").exists():
        with np.load(run_dir / "average.npz") as npz:
            weights = [npz[f"w{i}"] for i in range(len(npz.files))]
    paths = resume_point_paths(model_out)
    np.savez_compressed(
        paths["weights"],
        **{
            f"w{i}": np.asarray(w, dtype=np.float16)  # type: ignore[arg-type]
            for i, w in enumerate(weights)
        },
    )
    state = json.loads((run_dir / "state.json").read_text())
    state.update(
        config={**asdict(cfg), "data_dir": Path(cfg.data_dir).name},
        epochs_planned=cfg.epochs,
        best_epoch=summary.get("best_epoch"),
        history=read_history(run_dir / "history.csv"),
    )
    paths["state"].write_text(json.dumps(state, indent=1) + "\n")


if __name__ == "__main__":
    main()
