"""Local processes for the embedded default and for tests: a loopback redis-server and
Celery worker processes started as subprocesses (`celery -A worker worker`).

`LocalWorker` is the burst-mode helper: start it, submit, wait for the job in the
database, stop it, which makes integration tests deterministic.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emotion_batch.defaults import REPO_ROOT
from emotion_batch.errors import ConfigurationError

REDIS_START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def memory_kb(pid: int) -> dict[str, int]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in KiB."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


class LocalRedis:
    """A private redis-server on 127.0.0.1 with AOF persistence in its own folder."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise ConfigurationError(
                "redis-server not found: install it (Debian: apt-get install redis-server) or set REDIS_URL"
            )
        self.binary: str = binary
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="emotion-redis-"))
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis.log", "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise ConfigurationError(f"redis-server did not answer on port {self.port}; see {self.data_dir}/redis.log")

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL when `kill`, else a clean shutdown)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class LocalWorker:
    """`celery -A worker worker` in a subprocess with the given environment."""

    def __init__(
        self,
        env: dict[str, str],
        concurrency: int = 1,
        name: str = "local",
        log_file: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        # Fewer malloc arenas: threads decoding images otherwise fragment memory into many.
        self.env = {"MALLOC_ARENA_MAX": "2", **os.environ, **env}
        self.concurrency = concurrency
        self.name = name
        self.log_file = log_file
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(self.concurrency),
            "--pool",
            "prefork",
            "-E",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"{self.name}@%h",
            *self.extra_args,
        ]

    def start(self) -> LocalWorker:
        """Start the worker process (it loads its models in each child)."""
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), env=self.env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def pool_pids(self) -> list[int]:
        """Pids of the worker's pool processes (children of its main process)."""
        return child_pids(self.process.pid) if self.process is not None and self.alive() else []

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """Warm shutdown (SIGTERM to the whole process group), SIGKILL after `timeout`."""
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> LocalWorker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
