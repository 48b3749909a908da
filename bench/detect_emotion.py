"""Emotion accuracy through each face detector: FER2013 test faces pasted into larger
scenes, run through the real pipeline (decode -> detect -> crop -> CNN).

    python -m bench.detect_emotion --n 700

Each face (a class-stratified sample of FER2013 `test/`, PublicTest) is scaled to 96-240
px and pasted at a random place on a 640x480 cut of one of scikit-image's face-less
sample images, then saved as JPEG (quality 90). For each detector the `Analyzer` (the
worker's code, cnn backend) analyses the files; the answer is the face whose box centre
lies within half the pasted size of the pasted centre; a miss counts as wrong. Printed:
faces found, accuracy over all faces, and the CNN's plain accuracy on the same 48x48
faces for reference. Same seed, same photos for every detector.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import numpy as np
from PIL import Image

from bench.detect import _skimage
from emotion_batch.config import Settings

SCENES = ("coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "page", "horse",
          "immunohistochemistry", "clock", "astronaut-suit", "chelsea")


def paste_set(n: int, seed: int, out: Path) -> tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]:
    """Write the photos; return their paths, true labels, pasted centres (N, 2) and sizes."""
    from models.data import load_split, stratified_subset

    faces = stratified_subset(load_split("test"), n, seed)
    rng = np.random.default_rng(seed)
    scenes = [Image.fromarray(_skimage(name)).convert("RGB").resize((640, 480)) for name in SCENES]
    paths, centres, sizes = [], [], []
    for i, face in enumerate(faces.x[:, :, :, 0]):
        scene = scenes[i % len(scenes)].copy()
        side = int(rng.integers(96, 241))
        x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        pasted = Image.fromarray(face).convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        scene.paste(pasted, (x, y))
        path = out / f"{i:04d}.jpg"
        scene.save(path, quality=90)
        paths.append(path)
        centres.append((x + side / 2, y + side / 2))
        sizes.append(side)
    return paths, faces.y, np.array(centres), np.array(sizes)


def answers(results, centres: np.ndarray, sizes: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """Predicted class index per photo (-1: the pasted face was not found)."""
    out = np.full(len(results), -1)
    for i, result in enumerate(results):
        best = None
        for face in result.faces:
            box = face.box
            dist = np.hypot(box.x + box.w / 2 - centres[i][0], box.y + box.h / 2 - centres[i][1])
            if dist <= sizes[i] / 2 and (best is None or dist < best[0]):
                best = (dist, labels.index(face.dominant))
        if best:
            out[i] = best[1]
    return out


@click.command()
@click.option("--n", default=700, show_default=True, help="Faces (stratified over the 7 classes).")
@click.option("--seed", default=7, show_default=True)
@click.option("--yunet", type=click.Path(path_type=Path),
              default=Path(__file__).resolve().parents[2] / "shared" / "data" / "detectors"
              / "face_detection_yunet_2023mar.onnx", show_default=True)
def main(n: int, seed: int, yunet: Path) -> None:
    """Print the table."""
    from bench.detect import candidates
    from emotion_batch.classify import make_classifier, normalise
    from emotion_batch.pipeline import Analyzer

    settings = Settings(_env_file=None)
    classifier = make_classifier("cnn", settings)
    with tempfile.TemporaryDirectory() as folder:
        paths, truth, centres, sizes = paste_set(n, seed, Path(folder))
        from models.data import load_split, stratified_subset

        plain = np.argmax(normalise(classifier.predict(stratified_subset(load_split("test"), n, seed).x)), axis=1)
        click.echo(f"{len(paths)} FER2013 PublicTest faces pasted into 640x480 scenes (96-240 px), seed {seed}; "
                   f"model {classifier.model_version}")
        click.echo("| detector | faces found | emotion accuracy (all faces) |")
        click.echo("|---|---|---|")
        click.echo(f"| none (the 48x48 faces themselves) | - | {np.mean(plain == truth):.1%} |")
        for name, make in candidates(settings, yunet).items():
            if name == "mtcnn":
                continue
            analyzer = Analyzer(make, classifier, settings)
            results = [r for start in range(0, len(paths), 64)
                       for r in analyzer.analyze([str(p) for p in paths[start:start + 64]])]
            analyzer.close()
            got = answers(results, centres, sizes, classifier.labels)
            click.echo(f"| {name} | {np.mean(got >= 0):.1%} | {np.mean(got == truth):.1%} |")


if __name__ == "__main__":
    main()
