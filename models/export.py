"""What a run leaves behind: the exported (served) model, an ensemble member's float16
weights, the resume point committed next to either, and the per-epoch history."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from emotion_batch.runtime import load_keras, tf_classifier
from emotion_batch.sidecar import sha256_of, write_sidecar
from models.config import TrainConfig, build_float32, load_data


def resume_point_paths(model_out: Path) -> dict[str, Path]:
    """Committed resume files next to the exported model."""
    return {"weights": model_out.with_suffix(".resume.npz"), "state": model_out.with_suffix(".resume.json")}


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


def float32_copy(model: keras.Model, cfg: TrainConfig) -> keras.Model:
    """The same architecture built under float32 with the weights copied (cast): a model
    trained under a mixed policy serves (and converts to TFLite) in float32."""
    plain = build_float32(cfg)
    plain.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    return plain


def export_tflite(
    keras_path: Path, out_path: Path | None = None, representative: np.ndarray | None = None, samples: int = 300
) -> Path:
    """Convert the .keras model (uint8 input, cast inside) to .tflite next to it.

    With `representative` faces ((N, 48, 48, 1) uint8, e.g. training images) the weights and
    activations are quantized to int8 (about 4x faster on CPU, accuracy within a fraction of
    a point: see models/README.md); without, the export stays float32.
    """
    import tensorflow as tf

    model = load_keras(keras_path)
    forward = tf_classifier(model).forward  # type: ignore[attr-defined]
    concrete = forward.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], forward)
    if representative is not None:
        rng = np.random.default_rng(0)
        picks = rng.choice(len(representative), min(samples, len(representative)), replace=False)

        def calibration():  # TFLite's representative dataset generator
            for i in picks:
                yield [np.ascontiguousarray(representative[i : i + 1], dtype=np.uint8)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
    out_path = out_path or Path(keras_path).with_suffix(".tflite")
    out_path.write_bytes(converter.convert())
    return out_path


def export(run_dir: Path, model_out: Path, cfg: TrainConfig, summary: dict) -> None:
    """Export best.keras (float32) + its history + .tflite + sidecar next to model_out, and
    the resume point (last epoch's averaged weights, float16, + state) for `--resume`."""
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
