"""Helpers for the fault tests: photo sets, process handling, database probes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps
from sqlalchemy import func, select

from db.schema import Face
from db.schema import Image as ImageRow
from db.session import make_session_factory
from producer.local import child_pids


def make_photo_set(photos_dir: Path, out: Path, count: int, max_side: int = 480) -> list[Path]:
    """`count` distinct photos (flipped, shifted, brightened copies of the real ones)."""
    out.mkdir(parents=True, exist_ok=True)
    sources = []
    for path in sorted(photos_dir.glob("*.jpg")):
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        image.thumbnail((max_side, max_side))
        sources.append(image)
    written = []
    for i in range(count):
        image = sources[i % len(sources)]
        variant = i // len(sources)
        if variant % 2:
            image = ImageOps.mirror(image)
        shift = (variant // 2) % 8
        image = image.crop((shift, shift, image.width - 7 + shift, image.height - 7 + shift))
        image = ImageEnhance.Brightness(image).enhance(1.0 + 0.02 * (variant // 16))
        path = out / f"p{i:05d}.jpg"
        image.save(path, quality=90)
        written.append(path)
    return written


def kill_pool_children(pid: int) -> list[int]:
    """SIGKILL every pool process of the worker whose main process is `pid`."""
    killed = []
    for child in child_pids(pid):
        try:
            os.kill(child, signal.SIGKILL)
            killed.append(child)
        except ProcessLookupError:
            pass
    return killed


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class JobProbe:
    """Read-only questions about one job in the database."""

    def __init__(self, url: str, job_id: int) -> None:
        self.sessions = make_session_factory(url)
        self.job_id = job_id

    def statuses(self) -> dict[str, int]:
        with self.sessions() as s:
            rows = s.execute(
                select(ImageRow.status, func.count()).where(ImageRow.job_id == self.job_id).group_by(ImageRow.status)
            )
            return dict(rows.all())

    def finished(self) -> int:
        return sum(n for status, n in self.statuses().items() if status != "pending")

    def in_flight(self) -> int:
        """Images claimed by a delivery (attempts > 0) but without an outcome yet."""
        with self.sessions() as s:
            return s.scalar(
                select(func.count()).where(
                    ImageRow.job_id == self.job_id, ImageRow.status == "pending", ImageRow.attempts > 0
                )
            )

    def attempts(self, all_images: bool = False) -> dict[int, int]:
        """Deliveries counted per image id: of claimed images (attempts > 0), or of all."""
        with self.sessions() as s:
            query = select(ImageRow.id, ImageRow.attempts).where(ImageRow.job_id == self.job_id)
            if not all_images:
                query = query.where(ImageRow.attempts > 0)
            return dict(s.execute(query).all())

    def errors(self) -> list[str]:
        """The recorded reasons of the job's failed images."""
        with self.sessions() as s:
            return list(
                s.scalars(select(ImageRow.error).where(ImageRow.job_id == self.job_id, ImageRow.status == "failed"))
            )

    def image(self, name: str) -> ImageRow:
        with self.sessions() as s:
            return s.scalars(
                select(ImageRow).where(ImageRow.job_id == self.job_id, ImageRow.path.like(f"%/{name}"))
            ).one()

    def audit(self) -> dict[str, int]:
        """Submitted, with exactly one outcome, duplicates, lost."""
        with self.sessions() as s:
            images = s.execute(
                select(ImageRow.id, ImageRow.status, ImageRow.face_count).where(ImageRow.job_id == self.job_id)
            ).all()
            faces = dict(
                s.execute(
                    select(Face.image_id, func.count())
                    .join(ImageRow)
                    .where(ImageRow.job_id == self.job_id)
                    .group_by(Face.image_id)
                ).all()
            )
            dup_sha = s.scalar(
                select(func.count()).select_from(
                    select(ImageRow.sha256)
                    .where(ImageRow.job_id == self.job_id)
                    .group_by(ImageRow.sha256)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        finished = [i for i in images if i.status != "pending"]
        wrong_faces = sum(1 for i in images if faces.get(i.id, 0) != i.face_count)
        return {
            "submitted": len(images),
            "one_outcome": len(finished) - wrong_faces,
            "duplicates": wrong_faces + int(dup_sha or 0),
            "lost": len(images) - len(finished),
        }


@contextmanager
def read_only(paths: list[Path]) -> Iterator[None]:
    """Make files unwritable for a while, even to root (`chattr +i`; chmod otherwise)."""
    paths = [p for p in paths if p.exists()]
    as_root = os.geteuid() == 0
    modes = {p: p.stat().st_mode for p in paths}
    for path in paths:
        if as_root:
            subprocess.run(["chattr", "+i", str(path)], check=True)
        else:
            path.chmod(0o444)
    try:
        yield
    finally:
        for path in paths:
            if as_root:
                subprocess.run(["chattr", "-i", str(path)], check=True)
            else:
                path.chmod(modes[path])
