"""Fit BlazeFace's box framing to YuNet's on FER2013 *train* faces pasted into scenes.

    python -m bench.blazeface_framing --n 1500 --seed 101

The crop (emotion_batch/crop.py), FACE_MARGIN and the CNN's serving accuracy were tuned on
YuNet's boxes; BlazeFace frames a face differently (brows to chin, narrower). This pastes
`--n` faces of FER2013's `train/` split (from the tenth models/train.py holds out for
validation, so faces the CNN never fitted; never the test faces accuracy is reported on)
into 640x480 scenes exactly as `bench.detect_emotion` does (`bench.pasted`, upright,
96-240 px), runs YuNet and each BlazeFace model unframed (whole image and tiles, as the
detector runs them), keeps per detector the best-scoring box whose centre lies within half
the pasted size of the pasted centre, and prints per BlazeFace model, over the faces both
found: the medians (and quartiles) of YuNet's width and height over BlazeFace's and of the
centre offset in BlazeFace widths/heights: the `FRAMING` constants of
emotion_batch/detect/blazeface.py. For reference it also prints how each detector's crop
square (side max(w, h) x FACE_MARGIN) sits on the pasted FER2013 square, and how far the
eye lines of the two detectors disagree (the crop levels the eyes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

from bench.detect import yunet_option
from bench.pasted import Pasted, build_set
from emotion_batch.config import Settings

VAL_FRACTION, VAL_SEED = 0.1, 1234  # models/train.py's validation carve-out: train/ faces the CNN never fitted


def _nearest(rows: np.ndarray, scores: np.ndarray, item: Pasted) -> np.ndarray | None:
    """The best-scoring row (x, y, w, h, ...) whose box centre is within half the pasted size."""
    if len(rows) == 0:
        return None
    centres = rows[:, :2] + rows[:, 2:4] / 2
    near = np.hypot(centres[:, 0] - item.cx, centres[:, 1] - item.cy) <= item.size / 2
    if not near.any():
        return None
    return rows[near][int(np.argmax(scores[near]))]


def _eye_angle(row: np.ndarray) -> float:
    (ax, ay), (bx, by) = sorted([(row[4], row[5]), (row[6], row[7])])
    return float(np.degrees(np.arctan2(by - ay, bx - ax)))


def _quartiles(values: list[float]) -> str:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return f"{q2:+.3f} ({q1:+.3f} .. {q3:+.3f})"


def collect(items: list[Pasted], yunet: Path, settings: Settings) -> tuple[dict, dict]:
    """Per item: YuNet's row and each BlazeFace model's unframed row (or None)."""
    from emotion_batch.detect.blazeface import BlazeFaceDetector
    from emotion_batch.detect.yunet import YuNetDetector

    yn = YuNetDetector(yunet, score=settings.face_score, max_side=settings.detect_max_side, min_face=settings.min_face)
    bf = BlazeFaceDetector(max_side=settings.detect_max_side, min_face=settings.min_face)
    ours: dict[str, list] = {"yunet": []}
    for item in items:
        bgr = cv2.imread(item.path)
        if bgr is None:
            raise click.ClickException(f"cannot read {item.path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        faces = yn.detect(rgb)
        rows = np.array(
            [[f.x, f.y, f.w, f.h, *np.ravel(f.landmarks or [(0, 0)] * 2)[:4]] for f in faces], np.float32
        ).reshape(-1, 8)
        ours["yunet"].append(_nearest(rows, np.array([f.confidence for f in faces]), item))
        per_model: dict[str, tuple[list, list]] = {}
        for name, candidates, scores in bf.passes(rgb):  # 640x480: no downscaling
            per_model.setdefault(name, ([], []))
            per_model[name][0].append(candidates)
            per_model[name][1].append(scores)
        for name, (boxes, confidences) in per_model.items():
            ours.setdefault(name, []).append(_nearest(np.concatenate(boxes), np.concatenate(confidences), item))
    return ours, bf.framing


@click.command()
@click.option("--n", default=1500, show_default=True, help="Train faces (stratified over the 7 classes).")
@click.option("--seed", default=101, show_default=True)
@yunet_option
def main(n: int, seed: int, yunet: Path) -> None:
    """Print the fitted framing per BlazeFace model file."""
    from models.data import load_split, stratified_split, stratified_subset

    settings = Settings(_env_file=None)
    _, unseen = stratified_split(load_split("train"), VAL_FRACTION, VAL_SEED)
    train = stratified_subset(unseen, n, seed)
    with tempfile.TemporaryDirectory() as folder:
        items = build_set(train, Path(folder), seed, max_angle=0.0, sizes=(96, 240))
        rows, current = collect(items, yunet, settings)
    click.echo(
        f"{len(items)} FER2013 train/ faces (its validation tenth, seed {VAL_SEED}) pasted into "
        f"640x480 scenes (96-240 px), seed {seed}; "
        f"detect_max_side={settings.detect_max_side}, FACE_MARGIN={settings.face_margin}"
    )
    found = {name: sum(r is not None for r in got) for name, got in rows.items()}
    click.echo("faces found: " + ", ".join(f"{name} {k}/{len(items)}" for name, k in found.items()))
    click.echo("\ncrop square (side max(w,h) x margin) against the pasted FER2013 square, median (quartiles):")
    click.echo("| detector | side / pasted side | centre x offset / side | centre y offset / side |")
    click.echo("|---|---|---|---|")
    for name, got in rows.items():
        pairs = [(r, it) for r, it in zip(got, items) if r is not None]
        side = [max(r[2], r[3]) * settings.face_margin / it.size for r, it in pairs]
        dx = [(r[0] + r[2] / 2 - it.cx) / it.size for r, it in pairs]
        dy = [(r[1] + r[3] / 2 - it.cy) / it.size for r, it in pairs]
        click.echo(f"| {name} (unframed) | {_quartiles(side)} | {_quartiles(dx)} | {_quartiles(dy)} |")
    click.echo("\nYuNet's box against each BlazeFace model's, over the faces both found, median (quartiles):")
    click.echo("| model | faces | width ratio | height ratio | shift x (widths) | shift y (heights) | eye line, deg |")
    click.echo("|---|---|---|---|---|---|---|")
    fitted = {}
    for name in (k for k in rows if k != "yunet"):
        both = [(y, b) for y, b in zip(rows["yunet"], rows[name]) if y is not None and b is not None]
        width = [y[2] / b[2] for y, b in both]
        height = [y[3] / b[3] for y, b in both]
        sx = [(y[0] + y[2] / 2 - b[0] - b[2] / 2) / b[2] for y, b in both]
        sy = [(y[1] + y[3] / 2 - b[1] - b[3] / 2) / b[3] for y, b in both]
        eyes = [abs(_eye_angle(y) - _eye_angle(b)) for y, b in both]
        click.echo(
            f"| {name} | {len(both)} | {_quartiles(width)} | {_quartiles(height)} | {_quartiles(sx)} "
            f"| {_quartiles(sy)} | {_quartiles(eyes)} |"
        )
        fitted[name] = tuple(round(float(np.median(v)), 3) for v in (width, height, sx, sy))
    click.echo("\nFRAMING (emotion_batch/detect/blazeface.py), fitted:")
    for name, values in fitted.items():
        click.echo(f'    "{name}": Framing{values},  # was {current.get(name)}')


if __name__ == "__main__":
    main()
