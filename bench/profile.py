"""Where an image's time goes, stage by stage, and the decode/detect path before and after
issue 26 side by side on the same photos, interleaved, in one process:

    python -m bench.profile --photos ../shared/data/photos --repeat 4 --rounds 3
    python -m bench.profile --photos ../shared/data/photos --repeat 16 --system   # + the full system

Stages, on one thread (cv2 and the classifier too), in milliseconds of that thread's CPU
time per image (`time.thread_time`: waiting for a core on a busy machine is not counted): `read` (the file read once and
its sha256), `decode` (JPEG drafted to the size asked for, plus any finer decode the
search or a small face asks for), `resize` (shrinking to the detector's input and RGB ->
BGR), `detect` (YuNet's network), `crop` (grey face crops, aligned), `classify` (the
served classifier, per batch of BATCH_SIZE images). `before` is the path as it was
(decode >= DECODE_MAX_SIDE, an area-filtered shrink to DETECT_MAX_SIDE and one YuNet pass
there, the whole photo turned grey), rebuilt here from the same functions; `after` is the pipeline's own
(`emotion_batch.pipeline.find_boxes`, `fine_enough`, `face_crop_rgb`). Each round runs
every photo through both, alternating, so a busy machine slows both alike: the ratios
hold where the absolute figures do not.

`--overlap` times the in-process ceiling (both threads, wall clock) with the classifier's
early call on a batch's first faces and without it, alternating (on a quiet machine only:
it is a wall-clock figure). `--system` then runs the whole system (producer -> Redis -> one Celery worker -> SQLite,
`bench.system`) and the in-process ceiling on the job, and splits the system's time per
image into the worker's `analyse` (the pipeline, both threads), `database` (claim, reuse
lookup, store, bookkeeping: the rest of each task) and `queue` (the wall time outside
any task: Redis, Celery, the producer's submit).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
import cv2
import numpy as np

from bench.photoset import build_photoset
from emotion_batch.config import Settings
from emotion_batch.crop import face_crop, face_crop_rgb
from emotion_batch.detect.base import downscale, to_original
from emotion_batch.detect.yunet import YuNetDetector
from emotion_batch.imaging import decode_image, read_file
from emotion_batch.pipeline import decode_side, find_boxes, fine_enough

STAGES = ("read", "decode", "resize", "detect", "crop", "classify")

now = time.thread_time
"""This thread's CPU time: one thread does all the work here (cv2 and the classifier held
to one thread), and time spent waiting for a core on a busy machine does not count."""


@dataclass
class Clock:
    """Seconds per stage, added up over a run."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    faces: int = 0
    images: int = 0
    finer_decodes: int = 0
    second_passes: int = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = now()
        try:
            yield
        finally:
            self.seconds[name] += now() - started

    def ms_per_image(self, name: str) -> float:
        return 1000 * self.seconds[name] / max(1, self.images)


class TimedYuNet(YuNetDetector):
    """YuNet whose resize and network time go to `clock` (the real detector, timed)."""

    clock: Clock

    def prepare(self, rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
        with self.clock.stage("resize"):
            return super().prepare(rgb, side)

    def forward(self, bgr: np.ndarray) -> np.ndarray | None:
        if max(bgr.shape[:2]) > self.first_side:
            self.clock.second_passes += 1
        with self.clock.stage("detect"):
            return super().forward(bgr)


def _read(path: Path, settings: Settings, clock: Clock) -> bytes:
    with clock.stage("read"):
        data = read_file(path, settings.max_file_bytes)
        hashlib.sha256(data).hexdigest()
    return data


def before(path: Path, detector: TimedYuNet, settings: Settings, clock: Clock) -> list[np.ndarray]:
    """The path as it was before issue 26, stage by stage: decode >= DECODE_MAX_SIDE, one
    pass at DETECT_MAX_SIDE after an area-filtered shrink (MIN_FACE in decoded pixels), the
    whole photo turned grey."""
    data = _read(path, settings, clock)
    with clock.stage("decode"):
        image = decode_image(data, settings.max_pixels, settings.decode_max_side)
    with clock.stage("resize"):
        small, factor = downscale(image.rgb, detector.max_side)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    found = detector.forward(bgr)
    boxes = (
        []
        if found is None
        else to_original(found[:, :4], found[:, 14], factor, image.rgb.shape, detector.min_face, found[:, 4:14])
    )
    with clock.stage("crop"):
        if not boxes:
            return []
        gray = cv2.cvtColor(image.rgb, cv2.COLOR_RGB2GRAY)
        return [face_crop(gray, b, settings.face_margin, settings.face_align) for b in boxes]


def after(path: Path, detector: TimedYuNet, settings: Settings, clock: Clock) -> list[np.ndarray]:
    """The pipeline's path now (`Analyzer._find_faces` without its error handling)."""
    data = _read(path, settings, clock)
    with clock.stage("decode"):
        image = decode_image(data, settings.max_pixels, decode_side(detector, settings.decode_max_side))
    inside = sum(clock.seconds[s] for s in ("resize", "detect"))
    started = now()
    searched, boxes = find_boxes(detector, image, data, settings.max_pixels)
    final, boxes = fine_enough(searched, boxes, data, settings.max_pixels, settings.face_margin)
    # what the search spent outside resize and detect was finer decoding
    clock.seconds["decode"] += now() - started - (sum(clock.seconds[s] for s in ("resize", "detect")) - inside)
    clock.finer_decodes += (searched is not image) + (final is not searched)
    with clock.stage("crop"):
        return [face_crop_rgb(final.rgb, b, settings.face_margin, settings.face_align) for b in boxes]


PathFn = Callable[[Path, TimedYuNet, Settings, Clock], list[np.ndarray]]


def profile(
    paths: Sequence[Path], settings: Settings, yunet: Path, rounds: int, classifier: object
) -> dict[str, list[Clock]]:
    """Every photo through `before` and `after`, alternating, `rounds` times."""
    common = (yunet, settings.detect_max_side, settings.face_score, settings.min_face)
    runs: dict[str, tuple[PathFn, TimedYuNet]] = {
        "before": (before, TimedYuNet(*common, first_side=None)),  # one pass at DETECT_MAX_SIDE
        "after": (after, TimedYuNet(*common, first_side=settings.detect_first_side or None)),
    }
    clocks: dict[str, list[Clock]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (path_fn, detector) in runs.items():
            clock = detector.clock = Clock()
            for start in range(0, len(paths), settings.batch_size):
                chunk = paths[start : start + settings.batch_size]
                crops = [crop for path in chunk for crop in path_fn(path, detector, settings, clock)]
                clock.images += len(chunk)
                clock.faces += len(crops)
                if crops:
                    with clock.stage("classify"):
                        classifier.predict(np.stack(crops)[..., None])  # type: ignore[attr-defined]
            clocks[name].append(clock)
    return clocks


def _median(clocks: list[Clock], stage: str) -> float:
    return statistics.median(c.ms_per_image(stage) for c in clocks)


def stage_table(clocks: dict[str, list[Clock]]) -> str:
    """Markdown: ms per image per stage (median over rounds), before, after and their ratio."""
    lines = ["| stage | before ms/image | after ms/image | after / before |", "|---|---|---|---|"]
    totals = {name: 0.0 for name in clocks}
    for stage in STAGES:
        cells = {name: _median(c, stage) for name, c in clocks.items()}
        for name in totals:
            totals[name] += cells[name]
        ratio = cells["after"] / cells["before"] if cells["before"] else float("nan")
        lines.append(f"| {stage} | {cells['before']:.2f} | {cells['after']:.2f} | {ratio:.2f} |")
    ratio = totals["after"] / totals["before"]
    lines.append(f"| **total** | **{totals['before']:.2f}** | **{totals['after']:.2f}** | **{ratio:.2f}** |")
    first = {name: c[0] for name, c in clocks.items()}
    lines.append(
        f"\nfaces {first['before'].faces} before, {first['after'].faces} after; after: "
        f"{first['after'].second_passes} second YuNet passes and {first['after'].finer_decodes} finer decodes "
        f"over {first['after'].images} images; per-round totals before "
        f"{[round(sum(c.ms_per_image(s) for s in STAGES), 1) for c in clocks['before']]}, after "
        f"{[round(sum(c.ms_per_image(s) for s in STAGES), 1) for c in clocks['after']]} ms/image"
    )
    return "\n".join(lines)


def overlap_table(paths: Sequence[Path], settings: Settings, backend: str, rounds: int) -> str:
    """The in-process ceiling (both threads, wall clock) with the early classifier call and
    without it (one call per batch after all its images), alternating, `rounds` times."""
    from emotion_batch.classify import make_classifier
    from emotion_batch.detect import make_detector
    from emotion_batch.pipeline import EARLY_FACES, Analyzer

    classifier = make_classifier(backend, settings)
    names = [str(p) for p in paths]
    rates: dict[str, list[float]] = {"one call after the batch": [], f"early call (>= {EARLY_FACES} faces)": []}
    for _ in range(rounds):
        for label, early in zip(rates, (None, EARLY_FACES)):
            analyzer = Analyzer(lambda: make_detector(settings), classifier, settings, early_faces=early)
            analyzer.analyze(names[: settings.batch_size])
            started = time.perf_counter()
            for start in range(0, len(names), settings.batch_size):
                analyzer.analyze(names[start : start + settings.batch_size])
            rates[label].append(len(names) / (time.perf_counter() - started))
            analyzer.close()
    lines = ["| ceiling, 2 threads | images/s per round (wall) | median |", "|---|---|---|"]
    for label, values in rates.items():
        lines.append(f"| {label} | {' / '.join(f'{v:.1f}' for v in values)} | {statistics.median(values):.1f} |")
    first, second = (statistics.median(v) for v in rates.values())
    lines.append(f"\nearly / one call: {second / first:.3f}")
    return "\n".join(lines)


TASK_DONE = re.compile(r"Task \S+\[[^\]]+\] succeeded in ([0-9.]+)s: (\{.*\})")


def task_times(log: str) -> list[tuple[float, dict]]:
    """(seconds, summary) of every photo batch a worker log says succeeded."""
    found = []
    for match in TASK_DONE.finditer(log):
        summary = ast.literal_eval(match.group(2))
        if isinstance(summary, dict) and "analyse_seconds" in summary:
            found.append((float(match.group(1)), summary))
    return found


def system_table(paths: Sequence[Path], job: Path, warmup: Path, settings: Settings, backend: str) -> str:
    """The system's time per image split into analyse, database and queue, beside the ceiling."""
    from bench.system import Stages, ceiling, system

    stages = Stages()
    limit = ceiling(paths, settings, backend, stages)
    run = system(job, warmup, settings, backend, 1)
    assert run.log_file is not None
    tasks = [t for t in task_times(run.log_file.read_text()) if t[1]["job_id"] == run.job_id]
    images = run.timing.images
    task_s = sum(s for s, _ in tasks)
    analyse_s = sum(summary["analyse_seconds"] for _, summary in tasks)
    per = lambda seconds: 1000 * seconds / max(1, images)  # noqa: E731
    return "\n".join(
        [
            "| part | ms/image (wall, 2 cores) |",
            "|---|---|",
            f"| ceiling: decode + detect + crop (2 threads) | {1000 * stages.detect_seconds / limit.images:.2f} |",
            f"| ceiling: classify | {1000 * stages.classify_seconds / limit.images:.2f} |",
            f"| **ceiling** | **{1000 * limit.seconds / limit.images:.2f}** ({limit.images_per_second:.1f} images/s) |",
            f"| system: analyse (the pipeline in the worker) | {per(analyse_s):.2f} |",
            f"| system: database (claim, reuse, store, bookkeeping) | {per(task_s - analyse_s):.2f} |",
            f"| system: queue (outside any task) | {per(run.timing.seconds - task_s):.2f} |",
            f"| **system** | **{per(run.timing.seconds):.2f}** ({run.timing.images_per_second:.1f} images/s, "
            f"{run.timing.images_per_second / limit.images_per_second:.2f} of the ceiling) |",
            f"\n{len(tasks)} batches; worker peak memory {run.peak_mb:.0f} MB, "
            f"RSS growth after warm-up {100 * run.growth:+.1f}%",
        ]
    )


@click.command()
@click.option("--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--repeat", type=int, default=4, show_default=True, help="Variants per photo (bench.photoset).")
@click.option("--rounds", type=int, default=3, show_default=True, help="Before/after alternations.")
@click.option("--yunet", type=click.Path(path_type=Path, exists=True), envvar="YUNET_MODEL", default=None)
@click.option("--backend", default="cnn", show_default=True)
@click.option("--overlap", is_flag=True, help="Also the ceiling with and without the early classifier call.")
@click.option("--system", "with_system", is_flag=True, help="Also split the full system's time (bench.system).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the stage figures.")
def main(
    photos: Path,
    repeat: int,
    rounds: int,
    yunet: Path | None,
    backend: str,
    overlap: bool,
    with_system: bool,
    as_json: bool,
) -> None:
    """Print the per-stage profile; see the module docstring."""
    from emotion_batch.classify import make_classifier
    from emotion_batch.detect import find_yunet

    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    settings = Settings()
    model = yunet or find_yunet(settings)
    if model is None:
        raise click.UsageError("no YuNet file: --yunet or YUNET_MODEL")
    work = Path(tempfile.gettempdir()) / f"emotion-bench-{photos.resolve().name}-x{repeat}"
    paths = build_photoset(photos, repeat, work / "job")
    classifier = make_classifier(backend, settings, threads=1)
    classifier.predict(np.zeros((2, 48, 48, 1), np.uint8))
    clocks = profile(paths, settings, model, rounds, classifier)
    click.echo(
        f"{len(paths)} images from {photos} (x{repeat}), {rounds} rounds, one thread; backend {backend}, "
        f"DECODE_MAX_SIDE={settings.decode_max_side} DETECT_MAX_SIDE={settings.detect_max_side} "
        f"BATCH_SIZE={settings.batch_size}"
    )
    click.echo(stage_table(clocks))
    cv2.setNumThreads(opencv_threads)  # the rest runs as the worker does
    if overlap:
        click.echo(overlap_table(paths, settings, backend, rounds))
    if with_system:
        build_photoset(photos, 1, work / "warmup")
        click.echo(system_table(paths, work / "job", work / "warmup", settings, backend))
    if as_json:
        click.echo(
            json.dumps(
                {
                    name: {stage: round(_median(c, stage), 3) for stage in STAGES} | {"faces": c[0].faces}
                    for name, c in clocks.items()
                }
            )
        )


if __name__ == "__main__":
    main()
