"""The training schedule of issue 22, one step at a time: `python -m models.schedule`.

Three ensemble members, then one student distilled from them. Each invocation resumes the
first unfinished step from its committed resume point (`models/members/<name>.resume.*`)
for at most `--max-minutes`, and exports it as a member, so that a session starts the
schedule with one command and ends it by committing `models/members/`:

    nice -n 19 python -m models.schedule --max-minutes 150
    python -m models.schedule --status

A step is finished when it has run its planned epochs or its validation accuracy has not
improved for `STALL_EPOCHS` epochs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

MEMBERS_DIR = Path(__file__).resolve().parent / "members"
STALL_EPOCHS = 20


@dataclass(frozen=True)
class Step:
    """One trained net of the schedule: its name and the options of its first run."""

    name: str
    options: tuple[str, ...]
    epochs: int

    @property
    def model_out(self) -> Path:
        return MEMBERS_DIR / f"{self.name}.keras"

    def state(self) -> dict:
        """Its committed resume point's state ({} before its first run)."""
        path = self.model_out.with_suffix(".resume.json")
        return json.loads(path.read_text()) if path.exists() else {}

    def finished(self) -> bool:
        state = self.state()
        epoch, best_epoch = int(state.get("epoch", 0)), int(state.get("best_epoch") or 0)
        return epoch >= self.epochs or (epoch > 0 and epoch - best_epoch >= STALL_EPOCHS)


MEMBERS = (
    Step("vgg_a", ("--recipe", "vgg"), 120),
    Step("vgg_b", ("--recipe", "vgg", "--init-seed", "2", "--augment", "photo"), 120),
    Step("vgg_c", ("--recipe", "vgg", "--init-seed", "3", "--crop", "44"), 120),
)
STUDENT = Step(
    "student",
    ("--recipe", "v2", "--label-smoothing", "0", *[arg for m in MEMBERS for arg in ("--teacher", str(m.model_out))]),
    60,
)
STEPS = (*MEMBERS, STUDENT)


def next_step() -> Step | None:
    """The first unfinished step."""
    return next((step for step in STEPS if not step.finished()), None)


def train_args(step: Step, run_dir: Path, max_minutes: float) -> list[str]:
    """models.train's arguments for one invocation of `step`."""
    common = ["--run-dir", str(run_dir), "--model-out", str(step.model_out), "--member"]
    common += ["--epochs", str(step.epochs), "--max-minutes", str(max_minutes)]
    if step.state():
        return ["--resume", *common]
    return [*step.options, *common]


@click.command()
@click.option("--max-minutes", default=150.0, show_default=True, help="Budget of this invocation.")
@click.option("--runs", type=click.Path(path_type=Path), default=None, help="Run folders (default: the cache's runs/).")
@click.option("--status", is_flag=True, help="Only print where each step stands.")
def main(max_minutes: float, runs: Path | None, status: bool) -> None:
    """Resume the first unfinished step of the schedule for at most --max-minutes."""
    for step in STEPS:
        state = step.state()
        click.echo(
            f"{step.name}: epoch {state.get('epoch', 0)}/{step.epochs}, best validation "
            f"{state.get('best', 0.0):.2%} (epoch {state.get('best_epoch')}), "
            f"{state.get('elapsed_s', 0.0) / 3600:.1f} h{' - finished' if step.finished() else ''}"
        )
    todo = next_step()
    if status or todo is None:
        return
    from models import data, train

    run_dir = (runs or data.cache_dir() / "runs") / todo.name
    train.main.main(train_args(todo, run_dir, max_minutes), standalone_mode=False)


if __name__ == "__main__":
    main()
