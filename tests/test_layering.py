"""Imports run one way: `producer` and `worker` -> `db` and `emotion_batch`; `models`
(training) -> `emotion_batch`. Serving never loads training code."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emotion_batch.config import REPO_ROOT

# package -> the packages of ours it must never import (lazily or not)
FORBIDDEN = {
    "emotion_batch": {"models", "db", "producer", "worker"},
    "db": {"models", "producer", "worker"},
    "models": {"db", "producer", "worker"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package: str) -> None:
    wrong = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }
    assert {file: names for file, names in wrong.items() if names} == {}


def test_worker_and_api_load_no_training_code() -> None:
    code = (
        "import sys, worker.app, worker.tasks, emotion_batch.api\n"
        "print(sorted(m for m in sys.modules if m == 'models' or m.startswith('models.')))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
