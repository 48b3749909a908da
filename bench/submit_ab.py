"""The first submit of two checkouts, side by side: `python -m bench.submit_ab --folder DIR
--checkout OTHER [--checkout ...] [--rounds N]`.

Runs `producer submit DIR` from this checkout and each `--checkout` (a git worktree of an
earlier commit, e.g. `git worktree add /tmp/base bc3e934`) in turn, `--rounds` times, each
into a fresh SQLite database with a private redis-server, and prints per run the wall
time, files/s, CPU seconds, peak RSS, the first batch's time and the bytes written, then
each checkout's median and its ratio to this one. Alternating the checkouts in one run is
what makes the ratio fair on a machine whose speed drifts (a shared disk): the files are
the same and read once before the first run (the page cache as warm for all), and the
order of the checkouts flips every round.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

import click
from rich.console import Console

from bench.scale import Step, run_step, steps_table, warm
from emotion_batch.config import REPO_ROOT

console = Console()


@click.command()
@click.option("--folder", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option(
    "--checkout",
    "checkouts",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Another checkout to compare (a git worktree).",
)
@click.option("--rounds", type=int, default=1, show_default=True, help="Runs per checkout, alternated.")
@click.option("--work", type=click.Path(path_type=Path), help="Where the databases go (default /tmp).")
def main(folder: Path, checkouts: tuple[Path, ...], rounds: int, work: Path | None) -> None:
    """Time the first submit of `--folder` from each checkout; see the module docstring."""
    from producer.local import LocalRedis

    count = sum(sum(n.endswith(".jpg") for n in names) for _, _, names in os.walk(folder))
    trees = [REPO_ROOT, *(c.resolve() for c in checkouts)]
    runs: dict[Path, list[Step]] = {tree: [] for tree in trees}
    in_order: list[Step] = []
    warm(folder)
    for round_ in range(rounds):
        for tree in trees if round_ % 2 == 0 else trees[::-1]:  # neither always first
            run_dir = Path(tempfile.mkdtemp(prefix="submit-ab-", dir=work or tempfile.gettempdir()))
            os.sync()  # the last run's database written back before this one is timed
            env = {**os.environ, "DATABASE_URL": f"sqlite:///{run_dir / 'ab.db'}", "QUEUE": "submit-ab"}
            env.setdefault("DETECTOR", "haar")  # the same result key whatever ../shared holds
            with LocalRedis(run_dir / "redis") as redis_server:
                env["REDIS_URL"] = redis_server.url
                step = run_step(
                    str(tree),
                    ["submit", str(folder), "--name", "ab"],
                    env,
                    redis_server.url,
                    "submit-ab",
                    count,
                    cwd=tree,
                )
            runs[tree].append(step)
            in_order.append(step)
            shutil.rmtree(run_dir, ignore_errors=True)
    title = f"producer submit {folder} ({count:,} files), {os.cpu_count()} cores"
    console.print(steps_table(in_order, title, label="checkout"))
    mine = statistics.median(s.seconds for s in runs[REPO_ROOT])
    mine_cpu = statistics.median(s.cpu_s for s in runs[REPO_ROOT])
    for tree in trees[1:]:
        theirs = statistics.median(s.seconds for s in runs[tree])
        theirs_cpu = statistics.median(s.cpu_s for s in runs[tree])
        console.print(
            f"{REPO_ROOT.name} vs {tree}: {theirs / mine:.2f}x faster wall, {theirs_cpu / mine_cpu:.2f}x in CPU "
            f"seconds (medians of {rounds})"
        )


if __name__ == "__main__":
    main()
