"""What defines a training run: `TrainConfig`, its named recipes, and the net and data
splits it builds (shared by training, export, ensembles and distillation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras

from emotion_batch.labels import EMOTIONS
from models import data
from models.architecture import build_model, build_vgg


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


def build_float32(cfg: TrainConfig) -> keras.Model:
    """The configured architecture built under the float32 policy, whatever the current one."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return build_for(cfg)
    finally:
        keras.mixed_precision.set_global_policy(policy)
