"""The CLI's errors and side effects, in process (click's CliRunner) on real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from db.session import make_engine
from producer.cli import main


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", ["status", "report", "watch", "chart", "annotate"])
def test_read_only_commands_neither_create_nor_migrate_the_database(command: str, tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    extra = ["--out", str(tmp_path / "o")] if command in ("chart", "annotate") else []
    line = one_error_line(invoke(command, "1", *extra, "--database-url", f"sqlite:///{db}"))
    assert "no database" in line and not db.exists()


def test_read_only_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with make_engine(url).connect():  # an empty SQLite file, no schema
        pass
    line = one_error_line(invoke("report", "--database-url", url))
    assert "producer migrate" in line
    assert inspect(make_engine(url)).get_table_names() == []


@pytest.mark.parametrize(
    "args",
    [
        ["status", "999"],
        ["report", "999"],
        ["resume", "999"],
        ["retry-failed", "999"],
        ["watch", "999"],
        ["report"],
        ["chart", "999", "--out", "charts"],
    ],
)
def test_unknown_job_is_one_clear_line(args: list[str], db_url: str) -> None:
    assert invoke("migrate", "--database-url", db_url).exit_code == 0
    line = one_error_line(invoke(*args, "--database-url", db_url))
    assert "no job" in line


def test_submit_of_a_missing_path_records_nothing(db_url: str, tmp_path: Path) -> None:
    # No broker at this address: the path is checked first, so the error names the path.
    line = one_error_line(
        invoke(
            "submit", str(tmp_path / "does-not-exist"), "--database-url", db_url, "--redis-url", "redis://127.0.0.1:1/0"
        )
    )
    assert line == f"Error: not found: {tmp_path / 'does-not-exist'}"
    assert not (tmp_path / "cli.db").exists()


def test_an_invalid_setting_is_one_line() -> None:
    line = one_error_line(invoke("status", "1", env={"BATCH_SIZE": "0"}))
    assert "BATCH_SIZE" in line
    line = one_error_line(invoke("status", "1", env={"BACKEND": "nope"}))
    assert "unknown backend 'nope'" in line


def test_help_names_the_side_effects() -> None:
    assert "--resume-stalled" in invoke("watch", "--help").output
    assert "re-enqueues pending images" in " ".join(invoke("submit", "--help").output.split())
    run_help = " ".join(invoke("run", "--help").output.split())
    assert "redis-server" in run_help and "sample-photos" in run_help
    backends = invoke("submit", "--help").output
    assert "[cnn|deepface]" in backends  # choices come from the backend registry


@pytest.mark.parametrize("size", ["0", "-5", "1025"])
def test_batch_size_option_obeys_the_batch_size_rule(size: str, db_url: str, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    # checked before the broker (none at this address) and before anything is recorded
    line = one_error_line(
        invoke(
            "submit",
            str(tmp_path / "p"),
            "--batch-size",
            size,
            "--database-url",
            db_url,
            "--redis-url",
            "redis://127.0.0.1:1/0",
        )
    )
    assert line == f"Error: batch size must be between 1 and 1024, not {size}"
    assert not (tmp_path / "cli.db").exists()


def test_the_cli_adds_the_command_a_library_error_leaves_out(tmp_path: Path) -> None:
    env = {"MODEL_CACHE": str(tmp_path / "cache"), "YUNET_URL": "http://127.0.0.1:1/yunet.onnx"}
    line = one_error_line(invoke("models", "fetch", env=env))
    assert line.startswith("Error: YuNet face detector not downloaded (")
    assert line.endswith("or run `producer models fetch` on a machine with network")


def test_library_errors_name_no_command() -> None:
    """The library's messages name settings and files; the CLI adds its commands."""
    import ast
    import re

    from emotion_batch.config import REPO_ROOT

    said = []
    for path in sorted((REPO_ROOT / "emotion_batch").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) or (isinstance(node, ast.Assign) and "START_" in ast.unparse(node)):
                text = ast.unparse(node)
                if re.search(r"[`']producer |python -m", text):
                    said.append(f"{path.name}:{node.lineno}")
    assert said == []
