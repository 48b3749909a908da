"""Emotion accuracy through each face detector: FER2013 test faces pasted into larger
scenes (`bench.pasted`, upright here: the detectors are compared, not the alignment), run
through the real pipeline (decode -> detect -> crop -> CNN).

    python -m bench.detect_emotion --n 1000 --only yunet,blazeface

For each detector the `Analyzer` (the worker's code, cnn backend) analyses the same files;
the answer is the face whose box centre lies within half the pasted size of the pasted
centre; a miss counts as wrong. Printed per detector: faces found, accuracy over all
faces (+- its standard error), accuracy over the faces it found, and against the first
detector (YuNet when its file is here), on the same faces: the difference in all-faces
accuracy with the standard error of that paired difference, and both detectors' accuracy
over the faces both found (which isolates the crops from the misses). Also the CNN's
plain accuracy on the same 48x48 faces, and the model and detector versions, so a re-run
with another CNN says everything needed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import numpy as np

from bench.detect import yunet_option
from bench.pasted import build_set, predict
from emotion_batch.config import Settings


def _se(hits: np.ndarray) -> float:
    """Standard error of the mean of `hits` (0/1 or -1/0/1 per face)."""
    return float(hits.std(ddof=1) / np.sqrt(len(hits))) if len(hits) > 1 else 0.0


def compare(predicted: np.ndarray, truth: np.ndarray, reference: np.ndarray | None) -> dict:
    """Found, all-faces and found-faces accuracy; against `reference` (another detector's
    predictions on the same faces): the paired difference and the both-found accuracies."""
    found = predicted >= 0
    right = (predicted == truth).astype(np.float64)
    row = {
        "n": int(len(truth)),
        "found": float(found.mean()),
        "accuracy_all": float(right.mean()),
        "accuracy_all_se": _se(right),
        "accuracy_found": float(right[found].mean()) if found.any() else 0.0,
    }
    if reference is not None:
        ref_right = (reference == truth).astype(np.float64)
        both = found & (reference >= 0)
        row |= {
            "difference_all": float((right - ref_right).mean()),
            "difference_all_se": _se(right - ref_right),
            "both_found": int(both.sum()),
            "accuracy_both": float(right[both].mean()) if both.any() else 0.0,
            "reference_accuracy_both": float(ref_right[both].mean()) if both.any() else 0.0,
        }
    return row


@click.command()
@click.option("--n", default=1000, show_default=True, help="Faces (stratified over the 7 classes).")
@click.option("--seed", default=7, show_default=True)
@yunet_option
@click.option("--only", default="", help="Comma-separated detector names (default: all but mtcnn).")
@click.option("--json", "as_json", is_flag=True, help="Also print the rows as one JSON line.")
def main(n: int, seed: int, yunet: Path, only: str, as_json: bool) -> None:
    """Print the table."""
    from bench.detect import candidates
    from emotion_batch.classify import make_classifier, normalise
    from emotion_batch.pipeline import Analyzer
    from models.data import load_split, stratified_subset

    settings = Settings(_env_file=None)
    classifier = make_classifier("cnn", settings)
    test = stratified_subset(load_split("test"), n, seed)
    plain = np.argmax(normalise(classifier.predict(test.x)), axis=1)
    chosen = [c.strip() for c in only.split(",") if c.strip()]
    makers = {
        name: make
        for name, make in candidates(settings, yunet).items()
        if name != "mtcnn" and (not chosen or name in chosen)
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        items = build_set(test, Path(folder), seed, max_angle=0.0, sizes=(96, 240))
        truth = np.array([it.label for it in items])
        reference = None
        for name, make in makers.items():
            analyzer = Analyzer(make, classifier, settings)
            try:
                predicted = predict(items, analyzer, classifier.labels, batch=64)
                version = analyzer.detector_version
            finally:
                analyzer.close()
            rows.append({"detector": name, "version": version, **compare(predicted, truth, reference)})
            reference = predicted if reference is None else reference
    first = rows[0]["detector"] if rows else "-"
    click.echo(
        f"{len(items)} FER2013 PublicTest faces pasted into 640x480 scenes (96-240 px), seed {seed}; "
        f"model {classifier.model_version}; plain accuracy on the 48x48 faces {np.mean(plain == test.y):.1%}; "
        f"FACE_MARGIN={settings.face_margin} FACE_ALIGN={settings.face_align}"
    )
    click.echo(
        f"| detector | version | faces found | accuracy, all faces (+-SE) | accuracy, found faces "
        f"| all-faces difference vs {first} (+-SE, paired) | faces both found: this / {first} |"
    )
    click.echo("|---|---|---|---|---|---|---|")
    for r in rows:
        versus = (
            f"{100 * r['difference_all']:+.1f} +- {100 * r['difference_all_se']:.1f} points "
            f"| {r['accuracy_both']:.1%} / {r['reference_accuracy_both']:.1%} (n={r['both_found']})"
            if "difference_all" in r
            else "- | -"
        )
        click.echo(
            f"| {r['detector']} | {r['version']} | {r['found']:.1%} | {r['accuracy_all']:.1%} "
            f"+- {r['accuracy_all_se']:.1%} | {r['accuracy_found']:.1%} | {versus} |"
        )
    if as_json:
        click.echo(json.dumps({"model": classifier.model_version, "seed": seed, "rows": rows}))


if __name__ == "__main__":
    main()
