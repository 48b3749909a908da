"""Serve several trained CNNs as one model file: `python -m models.ensemble --help`.

Nets trained on the same split from different seeds make partly different mistakes, so the
mean of their probabilities is right more often than either. The ensemble is one Keras graph
(face -> every member, some reading the mirror image -> mean), exported to one int8 TFLite
file like a single net: the worker, the runtimes, the model version (the sha256 of the file
run) and the tests treat it as any other model. A member that reads the mirror image gives
the ensemble flip averaging without a second pass, so two members cost what one member with
run-time flip averaging costs.

The candidate replaces the served model only when, on the validation split every member was
trained without, it beats the served model as served (same runtime, its own flip setting) by
`--min-gain`. The test split is never read here: `python -m models.evaluate` reports it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import keras
import numpy as np

from emotion_batch.runtime import DEFAULT_MODEL, load_classifier_fn, load_keras, served_flip_tta
from emotion_batch.sidecar import read_sidecar, sha256_of, write_sidecar
from models import data
from models.architecture import build_ensemble, count_macs
from models.config import TrainConfig, load_data
from models.evaluate import predict_batched
from models.export import export_tflite

MIRROR_MODES = ("alternate", "none")


@dataclass(frozen=True)
class Member:
    """One trained net: its model (renamed member_i) and what its card says of its training."""

    model: keras.Model
    mirrored: bool
    training: dict


def _renamed(model: keras.Model, name: str) -> keras.Model:
    """The same functional model under another name (members of one graph need distinct names)."""
    config = model.get_config()
    config["name"] = name
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _submodels(model: keras.Model) -> list[keras.Model]:
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def load_members(paths: list[Path], mirror: str) -> list[Member]:
    """Each path is a single net (its card's `training` kept) or an ensemble (expanded to its
    members); member i reads the mirror image when mirror == "alternate" and i is odd."""
    found: list[tuple[keras.Model, dict]] = []
    for path in paths:
        model, card = load_keras(path), read_sidecar(path)
        subs = _submodels(model)
        if subs:
            cards = card.get("ensemble", {}).get("members", [{}] * len(subs))
            found += [(sub, member.get("training", {})) for sub, member in zip(subs, cards)]
        else:
            training = {k: v for k, v in card.get("training", {}).items() if k != "history"}
            found.append((model, training))
    return [
        Member(_renamed(model, f"member_{i}"), mirror == "alternate" and i % 2 == 1, training)
        for i, (model, training) in enumerate(found)
    ]


def check_same_split(members: list[Member]) -> dict:
    """The validation split every member trained without ({classes, seed, val_fraction});
    members that split the data differently would each have trained on the other's
    validation faces, so they are refused."""
    splits = []
    for member in members:
        config = member.training.get("config", {})
        splits.append(
            {
                "classes": list(config.get("classes", [])),
                "seed": config.get("seed"),
                "val_fraction": config.get("val_fraction"),
                "subset": config.get("subset", 0),
            }
        )
    if any(s != splits[0] for s in splits) or None in splits[0].values() or splits[0]["subset"]:
        raise click.ClickException(f"members were not trained on one full split: {splits}")
    return splits[0]


def accuracy(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Share of faces whose most probable class is the label."""
    return float((predict_batched(predict, x).argmax(axis=1) == y).mean())


def served_accuracy(model_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Validation accuracy of a model file exactly as the worker serves it."""
    return accuracy(load_classifier_fn(model_path, flip_tta=served_flip_tta(model_path)), x, y)


def build_candidate(members: list[Member], out_dir: Path, train_x: np.ndarray, serve_flip: bool) -> Path:
    """Ensemble .keras (float32) + int8 .tflite + card in out_dir; returns the .keras path."""
    model = build_ensemble([m.model for m in members], [m.mirrored for m in members])
    path = out_dir / "emotion_cnn.keras"
    model.save(path)
    tflite = export_tflite(path, representative=train_x)
    first = members[0].training.get("config", {})
    write_sidecar(
        path,
        {
            "labels": list(first.get("classes", [])),
            "runtime": "tflite",
            "tflite": tflite.name,
            "tflite_sha256": sha256_of(tflite),
            "tflite_quantization": "int8",
            "serve_flip_tta": serve_flip,
            "ensemble": {
                "members": [{"name": m.model.name, "mirrored": m.mirrored, "training": m.training} for m in members],
                "combine": "mean of member probabilities",
            },
        },
    )
    return path


def member_table(members: list[Member], x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Each member alone on the validation faces (float32 Keras), plain and flip-averaged."""
    from emotion_batch.runtime import tf_classifier, with_flip_tta

    rows = []
    for m in members:
        plain = tf_classifier(m.model)
        rows.append(
            {
                "member": m.model.name,
                "mirrored": m.mirrored,
                "plain": accuracy(plain, x, y),
                "flip": accuracy(with_flip_tta(plain), x, y),
            }
        )
    return rows


def write_card(
    candidate: Path, members: list[Member], cfg: TrainConfig, mirror: str, images: tuple[int, int], validation: dict
) -> None:
    """The candidate's card completed with how it was chosen: its validation (with each
    member's score) and its members' training; `images`: (train, validation) faces."""
    model = load_keras(candidate)
    train_images, val_images = images
    summary = {
        "best_val_accuracy": validation["ensemble_as_served"],
        "train_images": train_images,
        "val_images": val_images,
        "params": int(model.count_params()),
        "macs_per_face": count_macs(model),
        "training_seconds": round(sum(m.training.get("training_seconds", 0.0) for m in members), 1),
        "epochs_run": [m.training.get("epochs_run") for m in members],
        "config": {**asdict(cfg), "data_dir": Path(cfg.data_dir).name, "members": len(members), "mirror": mirror},
    }
    card = read_sidecar(candidate)
    card["ensemble"]["validation"] = validation
    training_data = {
        "dataset": "FER2013 train/",
        "validation": validation["split"],
        "train_images": train_images,
        "val_images": val_images,
        "subset": 0,
    }
    write_sidecar(candidate, {**card, "training_data": training_data, "training": summary})


def install(candidate: Path, model_out: Path) -> None:
    """The candidate's files over the served model's, the card naming its own files."""
    model_out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".keras", ".tflite", ".json"):
        shutil.copyfile(candidate.with_suffix(suffix), model_out.with_suffix(suffix))
    write_sidecar(model_out, {"model": model_out.name, "tflite": model_out.with_suffix(".tflite").name}, fresh=False)


@click.command()
@click.option(
    "--member",
    "member_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A trained .keras net (with its .json card), or an ensemble to extend; repeat.",
)
@click.option("--mirror", type=click.Choice(MIRROR_MODES), default="alternate", show_default=True)
@click.option(
    "--serve-flip/--no-serve-flip",
    default=False,
    show_default=True,
    help="Whether the worker should also average with the mirror image at run time "
    "(doubles the cost; recorded in the card as serve_flip_tta).",
)
@click.option("--out", "model_out", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="FER2013 folder.")
@click.option("--min-gain", default=0.005, show_default=True, help="Validation accuracy over the served model.")
@click.option("--force", is_flag=True, help="Replace the served model whatever the comparison says.")
def main(
    member_paths: tuple[Path, ...],
    mirror: str,
    serve_flip: bool,
    model_out: Path,
    data_dir: Path | None,
    min_gain: float,
    force: bool,
) -> None:
    """Build an ensemble of trained nets, compare it with the served model on validation,
    and serve it (replace --out) when it is better."""
    members = load_members(list(member_paths), mirror)
    split = check_same_split(members)
    cfg = TrainConfig(
        data_dir=str(data_dir or data.default_data_dir()),
        classes=tuple(split["classes"]),
        seed=split["seed"],
        val_fraction=split["val_fraction"],
    )
    train, val = load_data(cfg)
    table = member_table(members, val.x, val.y)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = build_candidate(members, Path(tmp), train.x, serve_flip)
        ours = served_accuracy(candidate, val.x, val.y)
        served = served_accuracy(model_out, val.x, val.y) if model_out.exists() else 0.0
        validation = {
            "faces": len(val),
            "split": f"{cfg.val_fraction:.0%} of train/, stratified, seed {cfg.seed}",
            "members": table,
            "ensemble_as_served": ours,
            "replaced_model_as_served": served,
        }
        write_card(candidate, members, cfg, mirror, (len(train), len(val)), validation)
        click.echo(json.dumps(validation, indent=1))
        if not (force or ours >= served + min_gain):
            click.echo(f"kept {model_out}: the ensemble's {ours:.2%} is not {min_gain:.1%} above {served:.2%}")
            return
        install(candidate, model_out)
    click.echo(f"serving the ensemble from {model_out}: validation {ours:.2%} as served (was {served:.2%})")


if __name__ == "__main__":
    main()
