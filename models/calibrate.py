"""Fit the served model's calibration temperature: `python -m models.calibrate --help`.

The served configuration (the card's runtime and flip setting) reads the validation split
the model was trained beside (never `test/`); the temperature minimising the negative
log-likelihood there is recorded in the sidecar as `serve_temperature`, which the worker
applies (`emotion_batch.runtime.served_temperature`). The expected calibration error before and
after, on validation and on `test/`, and a reliability diagram go to the model card.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from emotion_batch.runtime import DEFAULT_MODEL, apply_temperature, load_classifier_fn, served_flip_tta
from emotion_batch.sidecar import read_sidecar, write_sidecar
from models import data
from models.calibration import ECE_BINS, expected_calibration_error, fit_temperature, reliability_bins
from models.evaluate import MODELS_DIR, predict_batched


def validation_split(model_path: Path, data_dir: Path | None) -> data.Split:
    """The validation faces of the model's training run (its fraction and seed)."""
    training = read_sidecar(model_path).get("training", {}).get("config", {})
    full = data.load_split("train", data_dir)
    _, val = data.stratified_split(full, float(training.get("val_fraction", 0.1)), int(training.get("seed", 1234)))
    return val


def calibration_record(val_probs: np.ndarray, val: data.Split, test_probs: np.ndarray, test: data.Split) -> dict:
    """Temperature fitted on validation and the expected calibration errors it gives."""
    temperature = fit_temperature(val_probs, val.y)
    record = {"temperature": temperature, "bins": ECE_BINS, "fitted_on": f"validation split, {len(val)} faces"}
    for name, probs, split in (("validation", val_probs, val), ("test", test_probs, test)):
        record[f"ece_{name}_before"] = round(expected_calibration_error(probs, split.y), 4)
        scaled = apply_temperature(probs, temperature)
        record[f"ece_{name}_after"] = round(expected_calibration_error(scaled, split.y), 4)
    return record


@click.command()
@click.option(
    "--model", "model_path", type=click.Path(path_type=Path, exists=True), default=DEFAULT_MODEL, show_default=True
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="FER2013 folder (FER2013_DIR).")
@click.option("--out-dir", type=click.Path(path_type=Path), default=MODELS_DIR / "eval", show_default=True)
@click.option("--write/--dry-run", default=True, show_default=True, help="Record the temperature in the sidecar.")
def main(model_path: Path, data_dir: Path | None, out_dir: Path, write: bool) -> None:
    """Fit the served configuration's temperature on validation; report ECE before/after."""
    from models.plots import plot_reliability

    predict = load_classifier_fn(model_path, flip_tta=served_flip_tta(model_path))  # uncalibrated, as served
    val, test = validation_split(model_path, data_dir), data.load_split("test", data_dir)
    val_probs, test_probs = predict_batched(predict, val.x), predict_batched(predict, test.x)
    record = calibration_record(val_probs, val, test_probs, test)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {
        f"test, as served before (ECE {record['ece_test_before']:.3f})": reliability_bins(test_probs, test.y),
        f"test, T = {record['temperature']:g} (ECE {record['ece_test_after']:.3f})": reliability_bins(
            apply_temperature(test_probs, record["temperature"]), test.y
        ),
    }
    figure = plot_reliability(curves, out_dir / "reliability.png", f"{model_path.name}, FER2013 PublicTest")
    if write:
        write_sidecar(model_path, {"serve_temperature": record["temperature"], "calibration": record}, fresh=False)
    click.echo("\n".join(f"{k}: {v}" for k, v in record.items()))
    click.echo(f"wrote {figure}")


if __name__ == "__main__":
    main()
