"""Emotion accuracy through each face detector: FER2013 test faces pasted into larger
scenes (`bench.pasted`, upright here: the detectors are compared, not the alignment), run
through the real pipeline (decode -> detect -> crop -> CNN).

    python -m bench.detect_emotion --n 700

For each detector the `Analyzer` (the worker's code, cnn backend) analyses the same files;
the answer is the face whose box centre lies within half the pasted size of the pasted
centre; a miss counts as wrong. Printed: faces found, accuracy over all faces, and the
CNN's plain accuracy on the same 48x48 faces for reference.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import numpy as np

from bench.pasted import build_set, run_pipeline
from emotion_batch.config import Settings


@click.command()
@click.option("--n", default=700, show_default=True, help="Faces (stratified over the 7 classes).")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--yunet",
    type=click.Path(path_type=Path),
    default=Path(__file__).resolve().parents[2] / "shared" / "data" / "detectors" / "face_detection_yunet_2023mar.onnx",
    show_default=True,
)
@click.option("--only", default="", help="Comma-separated detector names (default: all but mtcnn).")
def main(n: int, seed: int, yunet: Path, only: str) -> None:
    """Print the table."""
    from bench.detect import candidates
    from emotion_batch.classify import make_classifier, normalise
    from emotion_batch.pipeline import Analyzer
    from models.data import load_split, stratified_subset

    settings = Settings(_env_file=None)
    classifier = make_classifier("cnn", settings)
    test = stratified_subset(load_split("test"), n, seed)
    plain = np.argmax(normalise(classifier.predict(test.x)), axis=1)
    with tempfile.TemporaryDirectory() as folder:
        items = build_set(test, Path(folder), seed, max_angle=0.0, sizes=(96, 240))
        click.echo(
            f"{len(items)} FER2013 PublicTest faces pasted into 640x480 scenes "
            f"(96-240 px), seed {seed}; model {classifier.model_version}"
        )
        click.echo("| detector | faces found | emotion accuracy (all faces) |")
        click.echo("|---|---|---|")
        click.echo(f"| none (the 48x48 faces themselves) | - | {np.mean(plain == test.y):.1%} |")
        for name, make in candidates(settings, yunet).items():
            chosen = [c.strip() for c in only.split(",") if c.strip()]
            if name == "mtcnn" or (chosen and name not in chosen):
                continue
            analyzer = Analyzer(make, classifier, settings)
            try:
                scores = run_pipeline(items, analyzer, classifier.labels, batch=64)
            finally:
                analyzer.close()
            click.echo(f"| {name} | {scores['found']:.1%} | {scores['accuracy_all']:.1%} |")


if __name__ == "__main__":
    main()
