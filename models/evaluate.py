"""Evaluate on FER2013 `test/` (PublicTest): `python -m models.evaluate --help`.

Writes to the output dir (default models/eval/): curves.png, confusion.png,
confusion_deepface.png, report.md (classification report + comparison table) and
metrics.json. The deepface backend is DeepFace's own emotion model, loaded through
deepface's API with DEEPFACE_HOME as found; here that folder holds a stand-in with
DeepFace's architecture but not DeepFace's weights (see its .json), so it is labelled so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from emotion_batch.labels import EMOTIONS
from emotion_batch.runtime import DEFAULT_MODEL
from emotion_batch.sidecar import read_sidecar, write_sidecar
from models import data
from models.metrics import classification_report, confusion_matrix, cross_entropy, normalise_rows, report_markdown
from models.plots import plot_confusion, plot_curves

MODELS_DIR = Path(__file__).resolve().parent
DEEPFACE_PUBLISHED = {"accuracy": 0.57, "source": "deepface maintainer, issues #247 and #1375"}
Predict = Callable[[np.ndarray], np.ndarray]


def predict_batched(predict: Predict, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Run predict over x in batches and stack the probabilities."""
    return np.concatenate([predict(x[i : i + batch]) for i in range(0, len(x), batch)])


def score(probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, loss, confusion matrix and classification report of predicted probabilities."""
    from models.calibration import expected_calibration_error

    cm = confusion_matrix(y, probs.argmax(axis=1), len(labels))
    report = classification_report(cm, labels)
    return {
        "accuracy": report["accuracy"],
        "loss": cross_entropy(probs, y),
        "ece": round(expected_calibration_error(probs, y), 4),
        "n": int(len(y)),
        "confusion": cm.tolist(),
        "report": report,
    }


def timed_scores(predict: Predict, test: data.Split) -> tuple[dict, np.ndarray]:
    """Score predict on the whole split; also record seconds and faces/s."""
    start = time.perf_counter()
    probs = predict_batched(predict, test.x)
    seconds = time.perf_counter() - start
    result = score(probs, test.y, test.classes)
    result["seconds"] = round(seconds, 2)
    result["faces_per_s"] = round(len(test) / seconds, 1)
    return result, probs


# The option that goes with choose_deepface_home, for every command that runs DeepFace.
deepface_home_option = click.option(
    "--deepface-home",
    type=click.Path(path_type=Path),
    default=None,
    help="DEEPFACE_HOME (default: $DEEPFACE_HOME, else ../shared/data/deepface).",
)


def choose_deepface_home(home: Path | None) -> Path:
    """The DeepFace home to evaluate: the option, else the DEEPFACE_HOME setting when set,
    else ../shared/data/deepface when that folder exists, else the setting's default (~)."""
    from emotion_batch.config import get_settings
    from models.settings import data_settings

    settings = get_settings()
    shared = data_settings().shared_data / "deepface"
    if home:
        return Path(home)
    if "deepface_home" in settings.model_fields_set or not shared.is_dir():
        return settings.deepface_home
    return shared


def deepface_predict_fn(home: Path) -> tuple[Predict, dict]:
    """The deepface backend exactly as the worker runs it (`DeepFaceClassifier`)."""
    from emotion_batch.classify.deepface import DeepFaceClassifier

    classifier = DeepFaceClassifier(home)
    info = {"deepface_home": str(home), "weights": str(classifier.weights)}
    info.update(_stand_in_info(classifier.weights))
    return classifier.predict, info


def _stand_in_info(weights: Path) -> dict:
    """Whether the weights file is the documented stand-in (its .json says so) or not."""
    for meta in (weights.with_name(weights.name + ".json"), weights.parent.parent.parent / (weights.name + ".json")):
        if meta.exists():
            doc = json.loads(meta.read_text())
            if "stand-in" in str(doc.get("what", "")):
                return {"stand_in": True, "stand_in_doc": str(meta)}
    return {"stand_in": False}


def evaluate_ours(model_path: Path, test: data.Split, runtime: str, tta: bool) -> dict:
    """Our model on the test split, as served (the card's runtime, e.g. int8 TFLite, and its
    run-time flip setting): plain and, with `tta`, averaged with the mirror image and over
    ten views; plus the float32 Keras model when the served runtime is another. `served`
    names the configuration the worker runs ("plain" or "tta_flip"). Every configuration's
    probabilities carry the card's calibration temperature, as the worker serves them."""
    from emotion_batch.runtime import (
        load_classifier_fn,
        resolve_runtime,
        served_flip_tta,
        served_temperature,
        with_flip_tta,
        with_temperature,
        with_ten_view_tta,
    )

    served, weights = resolve_runtime(model_path, runtime)
    temperature = served_temperature(model_path)
    predict = load_classifier_fn(model_path, served)
    plain, probs = timed_scores(with_temperature(predict, temperature), test)
    flip = served_flip_tta(model_path)
    results = {
        "model": Path(model_path).name,
        "runtime": served,
        "file": weights.name,
        "plain": plain,
        "served": "tta_flip" if flip else "plain",
        "temperature": temperature,
    }
    if tta or flip:
        results["tta_flip"], _ = timed_scores(with_temperature(with_flip_tta(predict), temperature), test)
    if tta:
        results["tta_ten"], _ = timed_scores(with_temperature(with_ten_view_tta(predict), temperature), test)
    if served != "tf":
        keras_fn = load_classifier_fn(model_path, "tf", temperature=temperature)
        results["keras_float32"], _ = timed_scores(keras_fn, test)
    return results


def load_test(data_dir: Path | None, labels: list[str], limit: int, seed: int) -> data.Split:
    """The test split restricted to the model's labels, optionally a stratified sample."""
    test = data.select_classes(data.load_split("test", data_dir), tuple(labels))
    return data.stratified_subset(test, limit, seed) if limit else test


def comparison_table(ours: dict, deepface: dict | None, seven_classes: bool = True) -> str:
    """Markdown table: ours (measured), DeepFace backend (measured), DeepFace published (cited).

    The DeepFace rows are 7-class figures, so they appear only for a 7-class model.
    """
    rows = ["| model | test accuracy (PublicTest) | how obtained |", "|---|---|---|"]
    name = ours.get("model", "ours")
    served = f"`{ours.get('file', name)}`"
    mark = {ours.get("served", "tta_flip"): " (served)"}
    rows.append(f"| ours, {served}{mark.get('plain', '')} | {ours['plain']['accuracy']:.2%} | measured here |")
    if "tta_flip" in ours:
        rows.append(
            f"| ours, {served} + flip averaging{mark.get('tta_flip', '')} | "
            f"{ours['tta_flip']['accuracy']:.2%} | measured here |"
        )
    if "tta_ten" in ours:
        rows.append(f"| ours, {served} + ten-view averaging | {ours['tta_ten']['accuracy']:.2%} | measured here |")
    if "keras_float32" in ours:
        rows.append(f"| ours, `{name}` (float32 Keras) | {ours['keras_float32']['accuracy']:.2%} | measured here |")
    if deepface:
        what = (
            "stand-in with DeepFace's architecture, not DeepFace's weights"
            if deepface["info"]["stand_in"]
            else "DeepFace's emotion model (weights as found)"
        )
        rows.append(f"| deepface backend: {what} | {deepface['accuracy']:.2%} | measured here |")
    if seven_classes:
        rows.append(
            f"| DeepFace published model | ~{DEEPFACE_PUBLISHED['accuracy']:.0%} | "
            f"cited ({DEEPFACE_PUBLISHED['source']}), not measured |"
        )
    return "\n".join(rows)


def write_artefacts(
    out_dir: Path, labels: list[str], ours: dict, deepface: dict | None, history: dict | None
) -> dict[str, Path]:
    """PNGs, report.md and metrics.json into out_dir; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out_dir / "metrics.json", "report": out_dir / "report.md"}
    cm = normalise_rows(np.asarray(ours["plain"]["confusion"]))
    paths["confusion"] = plot_confusion(
        cm, labels, out_dir / "confusion.png", f"ours, test accuracy {ours['plain']['accuracy']:.1%}"
    )
    if deepface:
        cm_df = normalise_rows(np.asarray(deepface["confusion"]))
        paths["confusion_deepface"] = plot_confusion(
            cm_df,
            labels,
            out_dir / "confusion_deepface.png",
            f"deepface backend{' (stand-in)' if deepface['info']['stand_in'] else ''}, "
            f"accuracy {deepface['accuracy']:.1%}",
        )
    if history:
        paths["curves"] = plot_curves(history, out_dir / "curves.png")
    paths["metrics"].write_text(json.dumps({"ours": ours, "deepface": deepface}, indent=1))
    paths["report"].write_text(render_report(ours, deepface))
    return paths


def render_report(ours: dict, deepface: dict | None) -> str:
    """report.md: classification reports and the comparison table."""
    parts = [
        f"# Test-set evaluation ({ours['plain']['n']} images, FER2013 PublicTest)",
        "",
        "## Ours, plain",
        "",
        report_markdown(ours["plain"]["report"]),
        "",
    ]
    if "tta_flip" in ours:
        parts += ["## Ours, horizontal-flip TTA", "", report_markdown(ours["tta_flip"]["report"]), ""]
    if deepface:
        parts += ["## deepface backend", "", report_markdown(deepface["report"]), ""]
    seven = len(ours["plain"]["confusion"]) == len(EMOTIONS)
    parts += ["## Comparison", "", comparison_table(ours, deepface, seven), ""]
    return "\n".join(parts)


def sidecar_metrics(ours: dict) -> dict:
    """The test figures recorded in the model's sidecar."""
    plain = ours["plain"]
    metrics = {
        "split": "FER2013 test/ (PublicTest)",
        "images": plain["n"],
        "accuracy": plain["accuracy"],
        "loss": plain["loss"],
        "macro_f1": plain["report"]["macro avg"]["f1"],
        "per_class_f1": {k: v["f1"] for k, v in plain["report"].items() if isinstance(v, dict) and "avg" not in k},
    }
    for key in ("tta_flip", "tta_ten", "keras_float32"):
        if key in ours:
            metrics[f"accuracy_{key}"] = ours[key]["accuracy"]
    served = ours.get("served", "tta_flip" if "tta_flip" in ours else "plain")
    metrics["served"] = served
    metrics["accuracy_served"] = ours[served]["accuracy"]
    metrics["ece_served"] = ours[served]["ece"]
    metrics["temperature"] = ours.get("temperature", 1.0)
    return metrics


@click.command()
@click.option(
    "--model", "model_path", type=click.Path(path_type=Path, exists=True), default=DEFAULT_MODEL, show_default=True
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="FER2013 folder (default: $FER2013_DIR or ../shared/data/fer2013).",
)
@click.option("--out-dir", type=click.Path(path_type=Path), default=MODELS_DIR / "eval", show_default=True)
@click.option(
    "--history",
    type=click.Path(path_type=Path),
    default=None,
    help="history.json of the run (default: <model>.history.json).",
)
@click.option("--runtime", default="auto", show_default=True)
@click.option("--tta/--no-tta", default=True, show_default=True)
@click.option("--deepface/--no-deepface", "with_deepface", default=True, show_default=True)
@deepface_home_option
@click.option("--limit", default=0, help="Stratified sample of N test images (0 = all).")
@click.option("--seed", default=0, show_default=True)
@click.option("--update-sidecar", is_flag=True, help="Record the test figures in <model>.json.")
def main(
    model_path: Path,
    data_dir: Path | None,
    out_dir: Path,
    history: Path | None,
    runtime: str,
    tta: bool,
    with_deepface: bool,
    deepface_home: Path | None,
    limit: int,
    seed: int,
    update_sidecar: bool,
) -> None:
    """Evaluate our model (and the deepface backend) on FER2013 test/; write the artefacts."""
    labels = read_sidecar(model_path).get("labels", list(EMOTIONS))
    test = load_test(data_dir, labels, limit, seed)
    ours = evaluate_ours(model_path, test, runtime, tta)
    deepface = None
    if with_deepface and tuple(labels) == EMOTIONS:
        predict, info = deepface_predict_fn(choose_deepface_home(deepface_home))
        deepface, _ = timed_scores(predict, test)
        deepface["info"] = info
    history_path = history or model_path.with_suffix(".history.json")
    hist = json.loads(history_path.read_text()) if history_path.exists() else None
    paths = write_artefacts(out_dir, labels, ours, deepface, hist)
    if update_sidecar and not limit:
        write_sidecar(model_path, {"test_metrics": sidecar_metrics(ours)}, fresh=False)
    click.echo(comparison_table(ours, deepface, tuple(labels) == EMOTIONS))
    click.echo("\n".join(f"wrote {p}" for p in paths.values()))


if __name__ == "__main__":
    main()
