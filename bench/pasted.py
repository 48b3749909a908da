"""FER2013 test faces pasted into larger scenes, run through the real detect -> crop ->
classify path: how much of the test accuracy survives a photo, and which crop framing
(margin around the detector's box, eye alignment) keeps the most.

    python -m bench.pasted --n 700 --margins 1.0,1.15,1.3 --align both

Each face (a stratified sample of FER2013 `test/`, PublicTest) is scaled to 80-260 px,
turned by up to +-20 degrees and pasted at a random place on a 640x480 scene cut from
scikit-image's face-less sample images, then saved as JPEG. The pipeline (`Analyzer`, the
worker's code) decodes, detects and classifies the files; the face whose box centre is
nearest the pasted centre (within half the pasted size) is the answer, a miss counts as
wrong. Printed per configuration: faces found, accuracy over all faces, accuracy over the
faces found, and the model's plain accuracy on the same 48x48 faces for reference.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np

from models import data
from models.metrics import markdown_table

SCENES = (
    "coffee",
    "rocket",
    "hubble_deep_field",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
    "immunohistochemistry",
    "page",
    "chelsea",
    "horse",
    "clock",
    "astronaut-suit",
)


@dataclass(frozen=True)
class Pasted:
    """One generated photo: where the face went and its true label."""

    path: str
    label: int
    cx: float
    cy: float
    size: float


def scene_pool() -> list[np.ndarray]:
    """640x480 RGB scenes from scikit-image's sample data (none shows a human face)."""
    from bench.detect import _skimage

    scenes = []
    for name in SCENES:
        image = _skimage(name)
        if image.dtype != np.uint8:
            image = cv2.normalize(
                image.astype(np.float32),
                None,
                0,
                255,  # type: ignore[call-overload]
                cv2.NORM_MINMAX,
            ).astype(np.uint8)
        scenes.append(cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA))
    return scenes


def paste(scene: np.ndarray, face: np.ndarray, size: int, angle: float, cx: float, cy: float) -> np.ndarray:
    """`face` (48x48 grey) scaled to `size`, turned by `angle` degrees about its centre and
    placed centred on (cx, cy) of a copy of `scene`."""
    scale = size / face.shape[0]
    matrix = cv2.getRotationMatrix2D((face.shape[1] / 2, face.shape[0] / 2), angle, scale)
    matrix[:, 2] += (cx - face.shape[1] / 2 * 1.0, cy - face.shape[0] / 2 * 1.0)
    height, width = scene.shape[:2]
    rgb = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    warped = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_CUBIC)
    mask = cv2.warpAffine(np.full(face.shape, 255, np.uint8), matrix, (width, height))
    out = scene.copy()
    out[mask > 127] = warped[mask > 127]
    return out


def build_set(
    test: data.Split, out: Path, seed: int, max_angle: float = 20.0, sizes: tuple[int, int] = (80, 260)
) -> list[Pasted]:
    """Write one JPEG per test face into `out` (size drawn from `sizes`, turned by up to
    +-`max_angle` degrees); return what was pasted where."""
    rng = np.random.default_rng(seed)
    scenes = scene_pool()
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i, (face, label) in enumerate(zip(test.x[..., 0], test.y)):
        size = int(rng.uniform(*sizes))
        half = size * (0.75 if max_angle else 0.5)
        cx, cy = rng.uniform(half, 640 - half), rng.uniform(half, 480 - half)
        image = paste(
            scenes[int(rng.integers(len(scenes)))], face, size, float(rng.uniform(-max_angle, max_angle)), cx, cy
        )
        path = out / f"{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        items.append(Pasted(str(path), int(label), cx, cy, size))
    return items


def answers(results: list, items: list[Pasted], labels: tuple[str, ...]) -> np.ndarray:
    """Predicted label per item (-1 when no face was found near the pasted one)."""
    predicted = np.full(len(items), -1)
    for k, (result, item) in enumerate(zip(results, items)):
        best, best_d = None, item.size / 2
        for face in result.faces:
            box = face.box
            d = float(np.hypot(box.x + box.w / 2 - item.cx, box.y + box.h / 2 - item.cy))
            if d <= best_d:
                best, best_d = face, d
        if best is not None:
            predicted[k] = labels.index(best.dominant)
    return predicted


def predict(items: list[Pasted], analyzer: object, labels: tuple[str, ...], batch: int = 32) -> np.ndarray:
    """Run the pasted photos through an `Analyzer`; the predicted label per item (-1: missed)."""
    results = []
    for i in range(0, len(items), batch):
        results += analyzer.analyze([it.path for it in items[i : i + batch]])  # type: ignore[attr-defined]
    return answers(results, items, labels)


def run_pipeline(items: list[Pasted], analyzer: object, labels: tuple[str, ...], batch: int = 32) -> dict:
    """Run the pasted photos through an `Analyzer`; faces found and accuracy."""
    predicted = predict(items, analyzer, labels, batch)
    truth = np.array([it.label for it in items])
    found = predicted >= 0
    return {
        "found": float(found.mean()),
        "accuracy_all": float((predicted == truth).mean()),
        "accuracy_found": float((predicted[found] == truth[found]).mean()) if found.any() else 0.0,
    }


def run_config(items: list[Pasted], classifier: object, yunet: Path, margin: float, align: bool) -> dict:
    """Detect (YuNet) -> crop -> classify every pasted photo with one crop configuration."""
    from emotion_batch.config import Settings
    from emotion_batch.detect import make_detector
    from emotion_batch.pipeline import Analyzer

    settings = Settings(
        _env_file=None, detector="yunet", yunet_model=yunet, face_margin=margin, face_align=align, decode_max_side=None
    )
    analyzer = Analyzer(lambda: make_detector(settings), classifier, settings)  # type: ignore[arg-type]
    try:
        scores = run_pipeline(items, analyzer, classifier.labels)  # type: ignore[attr-defined]
    finally:
        analyzer.close()
    return {"margin": margin, "align": align, **scores}


@click.command()
@click.option("--n", default=700, show_default=True, help="Test faces (stratified sample).")
@click.option("--seed", default=0, show_default=True)
@click.option("--margins", default="1.0,1.15,1.3", show_default=True)
@click.option("--align", type=click.Choice(["off", "on", "both"]), default="both", show_default=True)
@click.option(
    "--model",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="CNN .keras file (default: the CNN_MODEL setting).",
)
@click.option(
    "--yunet",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    envvar="YUNET_MODEL",
    help="YuNet ONNX file.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def main(
    n: int, seed: int, margins: str, align: str, model: Path | None, yunet: Path, data_dir: Path | None, as_json: bool
) -> None:
    """Print how each crop configuration does on FER2013 faces pasted into scenes."""
    from emotion_batch.classify.cnn import CnnClassifier
    from emotion_batch.config import get_settings

    test = data.stratified_subset(data.load_split("test", data_dir), n, seed)
    classifier = CnnClassifier(model or get_settings().cnn_model)
    plain = float((classifier.predict(test.x).argmax(axis=1) == test.y).mean())
    rows = []
    with tempfile.TemporaryDirectory(prefix="pasted-") as tmp:
        items = build_set(test, Path(tmp), seed)
        for margin in (float(m) for m in margins.split(",")):
            for flag in {"off": [False], "on": [True], "both": [False, True]}[align]:
                rows.append(run_config(items, classifier, yunet, margin, flag))
    report = {
        "faces": len(test),
        "model_version": classifier.model_version,
        "plain_accuracy_48x48": plain,
        "configs": rows,
    }
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(
        f"{len(test)} FER2013 test faces pasted into scenes; {classifier.model_version}; "
        f"plain 48x48 accuracy {plain:.1%}"
    )
    header = ["margin", "align", "faces found", "accuracy, all faces", "accuracy, found faces"]
    cells = [
        [
            f"{r['margin']:.2f}",
            "on" if r["align"] else "off",
            f"{r['found']:.1%}",
            f"{r['accuracy_all']:.1%}",
            f"{r['accuracy_found']:.1%}",
        ]
        for r in rows
    ]
    click.echo(markdown_table(header, cells))


if __name__ == "__main__":
    main()
