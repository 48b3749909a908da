"""What both live-source test modules use: an HTTP MJPEG stream of the face photos, served
by the test itself on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.mjpeg import MjpegServer, jpeg_frames


@pytest.fixture(scope="module")
def photos(photos_dir: Path) -> list[Path]:
    return sorted(photos_dir.glob("img*.jpg"))[:6]


@pytest.fixture
def stream(photos: list[Path]):
    server = MjpegServer(jpeg_frames(photos), rate=10).start()
    yield server
    server.stop()
