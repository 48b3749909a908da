"""The producer at scale: `python -m bench.scale --files N [--folder DIR]`.

Generates N small distinct JPEGs in nested folders (`bench.scalefiles`: 100 per folder,
dates over three years) unless `--folder` is given, reads every file once (the page
cache warm: per-file overheads, not the disk's speed), starts a private redis-server and
a fresh SQLite database (or `--database-url`), then runs the real `producer` CLI as child
processes and prints, per step, wall time, files/s, the child's peak RSS and the seconds
until the first batch was on the queue:

1. `submit` (first run) — every file read, registered and queued;
2. `resume` of that job — every pending image re-enqueued, page by page;
3. the job is then marked analysed in bulk (one face per image, 20% without: the stand-in
   for a million worker results, which this 2-core machine cannot compute in a session);
4. `submit` again (second run) — every folder unchanged, shared whole: nothing read or
   queued;
5. `status`, `report --by folder`, `chart` and `report --format html` of the first job.

The status line is also timed in process (the query `status`, `watch` and `--wait` poll),
median of 5. The queue is emptied between steps. With `--json` the last line is one object.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from bench.scalefiles import generate
from emotion_batch.config import REPO_ROOT

console = Console()


@dataclass
class Step:
    name: str
    seconds: float
    peak_mb: float
    first_batch_s: float | None = None
    files: int | None = None
    exit_code: int = 0
    cpu_s: float = 0.0  # the child's user + system CPU time: what it costs, whatever the load
    written_mb: float | None = None  # bytes the child caused to be written to storage (/proc/PID/io)

    @property
    def files_per_s(self) -> float | None:
        return self.files / self.seconds if self.files and self.seconds else None


def _watch_queue(redis_url: str, queue: str, started: float, stop: threading.Event, found: list[float]) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    while not stop.is_set():
        if client.llen(queue):
            found.append(time.monotonic() - started)
            return
        time.sleep(0.05)


def _written_bytes(pid: int) -> int | None:
    """Bytes an exited, not yet reaped child caused to be written to storage (Linux
    `/proc/PID/io`): its storage traffic (SQLite's log and checkpoints), the part of a
    submit that other machines' load on a shared disk slows most."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    try:
        with open(f"/proc/{pid}/io") as io:
            return next((int(line.split()[1]) for line in io if line.startswith("write_bytes:")), None)
    except OSError:
        return None


def warm(folder: Path) -> float:
    """Read every file under `folder` once, so that no timed step pays for first reads
    from the disk (the figures are per-file overheads, as in the issue, not the disk's
    speed); return the seconds it took."""
    started = time.monotonic()
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as handle:
                while handle.read(1 << 20):
                    pass
    return time.monotonic() - started


def run_step(
    name: str,
    args: list[str],
    env: dict[str, str],
    redis_url: str,
    queue: str,
    files: int | None = None,
    cwd: Path = REPO_ROOT,
) -> Step:
    """Run `producer ARGS` as a child (of the checkout at `cwd`); its wall time, CPU time,
    peak RSS, bytes written and when the first batch was on the queue."""
    import redis

    redis.Redis.from_url(redis_url).delete(queue)
    stop = threading.Event()
    found: list[float] = []  # seconds to the first batch on the queue
    started = time.monotonic()
    watcher = threading.Thread(target=_watch_queue, args=(redis_url, queue, started, stop, found), daemon=True)
    watcher.start()
    process = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    written = _written_bytes(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    stop.set()
    watcher.join()
    if process.returncode:
        console.print(f"[red]{name} exited {process.returncode}:[/]\n{stderr[-2000:]}")
    redis.Redis.from_url(redis_url).delete(queue)
    return Step(
        name,
        seconds,
        usage.ru_maxrss / 1024,
        found[0] if found else None,
        files,
        process.returncode,
        usage.ru_utime + usage.ru_stime,
        written / 1e6 if written is not None else None,
    )


def _insert_faces(session, job_id: int, key) -> None:  # noqa: ANN001 (a Session, a ResultKey)
    """One face per analysed image, its emotion cycling with the image id (70% dominant)."""
    from sqlalchemy import case, insert, literal, select

    from db.frames import FACE_COLUMNS
    from db.schema import Face, Image
    from emotion_batch.labels import EMOTIONS

    version = key.model_version
    dominant = case(*((Image.id % 7 == i, e) for i, e in enumerate(EMOTIONS)))
    percents = [case((Image.id % 7 == i, 70.0), else_=5.0).label(e) for i, e in enumerate(EMOTIONS)]
    columns = list(FACE_COLUMNS[1:])  # every face column but the generated id
    source = select(
        Image.id,
        literal(0),
        literal(8),
        literal(8),
        literal(40),
        literal(40),
        literal(0.9),
        *percents,
        dominant,
        literal(key.backend),
        literal(version),
        literal(key.detector),
    ).where(Image.job_id == job_id, Image.status == "done")
    session.execute(insert(Face).from_select(columns, source))


def _checkpoint(database_url: str) -> None:
    """Empty a SQLite write-ahead log into the database file (other databases: nothing)."""
    if not database_url.startswith("sqlite"):
        return
    # Workers commit small batches and keep the write-ahead log checkpointed as they
    # go; this stand-in writes a million results in one transaction and, with its
    # connection kept open, left them all in the log for the next writer (the second
    # submit) to copy into the database inside its measured time (bench/RESULTS.md).
    from db.session import make_engine

    with make_engine(database_url).connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    make_engine(database_url).dispose()


def mark_analysed(database_url: str, job_id: int, key) -> float:  # noqa: ANN001 (a ResultKey)
    """Every pending image of the job done with one face (every fifth: no face), in bulk SQL
    through the same tables and triggers a worker writes, under the result key a worker
    with these settings would store; returns the seconds it took."""
    from sqlalchemy import case, func, update

    from db.schema import Image
    from db.session import make_session_factory

    started = time.monotonic()
    sessions = make_session_factory(database_url)
    version = key.model_version
    with sessions() as session:
        has_face = (Image.id % 5) != 0
        session.execute(
            update(Image)
            .where(Image.job_id == job_id, Image.status == "pending")
            .values(
                status=case((has_face, "done"), else_="no_face"),
                face_count=case((has_face, 1), else_=0),
                width=64,
                height=64,
                backend=key.backend,
                model_version=version,
                detector=key.detector,
                processed_at=func.now(),
                attempts=1,
            )
        )
        _insert_faces(session, job_id, key)
        session.commit()
    _checkpoint(database_url)
    return time.monotonic() - started


def status_query_ms(database_url: str, job_id: int) -> float:
    """Median over 5 of the progress query behind `status`, `watch` and `--wait`."""
    from db.jobs import job_progress
    from db.session import make_session_factory

    sessions = make_session_factory(database_url)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        with sessions() as session:
            job_progress(session, job_id)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _db_mb(database_url: str) -> float | None:
    if not database_url.startswith("sqlite:///"):
        return None
    path = Path(database_url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6


def steps_table(steps: list[Step], title: str, label: str = "step") -> Table:
    """One row per step (`label` heads the column of their names)."""
    table = Table(title=title)
    for col in (label, "seconds", "files/s", "CPU s", "peak RSS MB", "first batch s", "written MB"):
        table.add_column(col, justify="left" if col == label else "right")
    for s in steps:
        rate = f"{s.files_per_s:,.0f}" if s.files_per_s else "-"
        first = f"{s.first_batch_s:.2f}" if s.first_batch_s is not None else "none"
        written = f"{s.written_mb:,.0f}" if s.written_mb is not None else "-"
        table.add_row(s.name, f"{s.seconds:.1f}", rate, f"{s.cpu_s:.1f}", f"{s.peak_mb:.0f}", first, written)
    return table


def run_steps(
    root: Path, run_dir: Path, database_url: str, count: int
) -> tuple[list[Step], float, list[float | None], Path]:
    """Submit, resume, analyse (in bulk), submit again and read reports, each step timed;
    returns the steps, the in-process status query's time, the database sizes, the output folder."""
    from producer.local import LocalRedis

    queue = "scale-bench"
    steps: list[Step] = []
    from emotion_batch.config import Settings
    from producer.reuse import reuse_key

    env = {**os.environ, "DATABASE_URL": database_url, "QUEUE": queue}
    key = reuse_key("cnn", Settings(), force=False)
    if key is None:  # no YuNet file here: the bench's workers would use Haar (its file ships with OpenCV)
        env["DETECTOR"] = "haar"
        key = reuse_key("cnn", Settings(detector="haar"), force=False)
    with LocalRedis(run_dir / "redis") as redis_server:
        env["REDIS_URL"] = redis_server.url
        url = redis_server.url
        steps.append(run_step("submit (first)", ["submit", str(root), "--name", "first"], env, url, queue, count))
        db_first = _db_mb(database_url)
        steps.append(run_step("resume", ["resume", "1"], env, url, queue, count))
        fill = mark_analysed(database_url, 1, key)
        console.print(f"marked job 1 analysed in bulk in {fill:.1f} s")
        db_analysed = _db_mb(database_url)
        steps.append(run_step("submit (second)", ["submit", str(root), "--name", "second"], env, url, queue, count))
        db_second = _db_mb(database_url)
        steps.append(run_step("status", ["status", "1"], env, url, queue))
        status_ms = status_query_ms(database_url, 1)
        steps.append(run_step("report --by folder", ["report", "1", "--by", "folder"], env, url, queue))
        out = run_dir / "out"
        steps.append(run_step("chart", ["chart", "1", "--out", str(out)], env, url, queue))
        steps.append(
            run_step("html", ["report", "1", "--format", "html", "--out", str(out / "r.html")], env, url, queue)
        )
    return steps, status_ms, [db_first, db_analysed, db_second], out


def summarise(
    steps: list[Step], status_ms: float, sizes: list[float | None], out: Path, count: int, as_json: bool
) -> None:
    """Print the steps' table, the ratios and sizes (and one JSON line with --json)."""
    db_first, db_analysed, db_second = sizes
    load = os.getloadavg()[0]
    title = f"{count:,} files, {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the end"
    console.print(steps_table(steps, title))
    first, second = steps[0], steps[2]
    console.print(f"status query (in process, median of 5): {status_ms:.1f} ms")
    console.print(
        f"second submit / first: {first.seconds / second.seconds:.1f}x faster wall, "
        f"{first.cpu_s / second.cpu_s:.1f}x in CPU seconds"
    )
    if db_first is not None and db_analysed is not None and db_second is not None:
        console.print(
            f"SQLite size: {db_first:.0f} MB after the first submit, {db_analysed:.0f} MB analysed, "
            f"{db_second:.0f} MB after the second submit (+{db_second - db_analysed:.0f} MB)"
        )
    charts = sorted(out.glob("*.png"))
    if charts:
        from PIL import Image

        chart_sizes = ", ".join(f"{p.name} {Image.open(p).size[0]}x{Image.open(p).size[1]}" for p in charts)
        console.print(f"charts: {chart_sizes}; html {(out / 'r.html').stat().st_size / 1e6:.1f} MB")
    if as_json:
        print(
            json.dumps(
                {
                    "files": count,
                    "steps": [asdict(s) | {"files_per_s": s.files_per_s} for s in steps],
                    "status_query_ms": status_ms,
                    "second_speedup": first.seconds / second.seconds,
                    "second_speedup_cpu": first.cpu_s / second.cpu_s,
                    "db_mb": sizes,
                }
            )
        )


@click.command()
@click.option("--files", type=int, default=100_000, show_default=True, help="Files to generate.")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Use this folder instead of generating files.",
)
@click.option("--per-folder", type=int, default=100, show_default=True, help="Generated files per folder.")
@click.option("--work", type=click.Path(path_type=Path), help="Where the files and database go (default /tmp).")
@click.option("--database-url", help="Database to use (default: a fresh SQLite file under --work).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line.")
def main(
    files: int, folder: Path | None, per_folder: int, work: Path | None, database_url: str | None, as_json: bool
) -> None:
    """Measure the producer's steps at scale; see the module docstring."""
    work = work or Path(tempfile.gettempdir())
    root = folder or generate(work / f"emotion-scale-{files}", files, per_folder)
    run_dir = Path(tempfile.mkdtemp(prefix="scale-run-", dir=work))
    database_url = database_url or f"sqlite:///{run_dir / 'scale.db'}"
    # os.walk, not Path.rglob: rglob keeps every path it yielded in a set (about 390 MB at a
    # million files), and each child forked from this process would report that as its peak
    count = sum(sum(n.endswith(".jpg") for n in names) for _, _, names in os.walk(root)) if folder else files
    console.print(f"{count:,} files under {root}; database {database_url.split('@')[-1]}")
    console.print(f"every file read once beforehand in {warm(root):.1f} s (page cache warm)")
    os.sync()  # what earlier runs wrote goes to the disk before the first step is timed
    steps, status_ms, sizes, out = run_steps(root, run_dir, database_url, count)
    summarise(steps, status_ms, sizes, out, count, as_json)


if __name__ == "__main__":
    main()
