"""Throughput, side by side in one run on the same photos:
`python -m bench.throughput --photos DIR [--repeat N] [--json]`.

Measures images/s (and faces/s) of DeepFace's own loop (its default detector, and
`deepface_yunet`: its fastest, YuNet, on images decoded before the clock starts), fer's own loop, our in-process
pipeline (`ceiling`) and the full system (`system`: producer -> Redis -> Celery worker ->
database), then prints the ratios and the worker's peak memory. With `--json` the last
line is one JSON object with the keys images, faces, deepface, deepface_yunet, fer, ceiling,
system.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from bench.baselines import Timing, deepface_loop, fer_loop
from bench.photoset import build_photoset
from bench.system import Stages, SystemRun, ceiling, system
from emotion_batch.classify import BACKENDS
from emotion_batch.config import Settings

console = Console()


def _table(rows: dict[str, Timing], run: SystemRun | None) -> Table:
    table = Table(title=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for col in ("pipeline", "images", "faces", "seconds", "images/s", "faces/s"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for name, t in rows.items():
        table.add_row(
            name,
            str(t.images),
            str(t.faces),
            f"{t.seconds:.1f}",
            f"{t.images_per_second:.1f}",
            f"{t.faces / t.seconds if t.seconds else 0:.1f}",
        )
    return table


def _ratios(rows: dict[str, Timing]) -> dict[str, float]:
    rate = {k: v.images_per_second for k, v in rows.items()}
    out = {}
    for other in ("deepface", "deepface_yunet", "fer", "ceiling"):
        if "system" in rate and rate.get(other):
            out[f"system/{other}"] = rate["system"] / rate[other]
    return out


@click.command()
@click.option("--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--repeat", type=int, default=1, help="Variants per photo (flipped, rescaled): a larger job.")
@click.option("--baseline-limit", type=int, default=200, help="DeepFace/fer loops run on the first N images.")
@click.option("--backend", type=click.Choice(list(BACKENDS)), default="cnn")
@click.option("--workers", type=int, default=1, help="Worker processes (concurrency) for `system`.")
@click.option("--skip", multiple=True, type=click.Choice(["deepface", "deepface_yunet", "fer", "ceiling", "system"]))
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line.")
def main(
    photos: Path, repeat: int, baseline_limit: int, backend: str, workers: int, skip: tuple[str, ...], as_json: bool
) -> None:
    """Measure and compare; see the module docstring."""
    settings = Settings()
    work = Path(tempfile.gettempdir()) / f"emotion-bench-{photos.resolve().name}-x{repeat}"
    paths = build_photoset(photos, repeat, work / "job")
    build_photoset(photos, 1, work / "warmup")
    console.print(f"{len(paths)} images from {photos} (x{repeat}); backend {backend}")
    rows: dict[str, Timing] = {}
    stages = Stages()
    measures = {
        "deepface": lambda: deepface_loop(paths[:baseline_limit]),
        "deepface_yunet": lambda: deepface_loop(paths[:baseline_limit], "yunet", predecoded=True),
        "fer": lambda: fer_loop(paths[:baseline_limit]),
        "ceiling": lambda: ceiling(paths, settings, backend, stages),
    }
    for name, measure in measures.items():
        if name not in skip:
            rows[name] = measure()
            console.print(f"{name}: {rows[name].images_per_second:.1f} images/s")
    run = None
    if "system" not in skip:
        run = system(work / "job", work / "warmup", settings, backend, workers)
        rows["system"] = run.timing
    console.print(_table(rows, run))
    if "ceiling" in rows:
        c = rows["ceiling"]
        console.print(
            f"ceiling split: decode+detect+crop {1000 * stages.detect_seconds / c.images:.1f} ms/image, "
            f"classify {1000 * stages.classify_seconds / max(1, c.faces):.2f} ms/face "
            f"({c.faces / stages.classify_seconds if stages.classify_seconds else 0:.0f} faces/s)"
        )
    for name, value in _ratios(rows).items():
        console.print(f"{name}: {value:.2f}x")
    if run:
        console.print(
            f"worker peak memory {run.peak_mb:.0f} MB per process; RSS growth after warm-up "
            f"(10% of the job) to the end {100 * run.growth:+.1f}%; RSS MB at 0/10/25/50/75/100%: "
            f"{run.trajectory()}"
        )
    if as_json:
        print(
            json.dumps(
                {
                    "images": len(paths),
                    "faces": rows["system"].faces if run else None,
                    **{k: round(v.images_per_second, 2) for k, v in rows.items()},
                    "ratios": {k: round(v, 2) for k, v in _ratios(rows).items()},
                    "worker_peak_mb": round(run.peak_mb) if run else None,
                    "worker_rss_growth": round(run.growth, 4) if run else None,
                }
            )
        )


if __name__ == "__main__":
    main()
