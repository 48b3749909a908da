"""Scanning and hashing on real files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from emotion_batch.hashing import sha256_file
from producer.scan.hash import scan
from producer.scan.walk import sniff_image


def _jpeg(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, "JPEG")


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_images_recognised_by_content_and_extension(tmp_path: Path) -> None:
    _jpeg(tmp_path / "photo.jpg")
    _jpeg(tmp_path / "no-extension")
    (tmp_path / "fake.png").write_text("not a png")
    (tmp_path / "notes.txt").write_text("plain text")
    files, problems = scan([tmp_path])
    names = sorted(Path(f.path).name for f in files)
    assert names == ["fake.png", "no-extension", "photo.jpg"]
    assert problems.unreadable_dirs == [] and problems.missing == []


def test_symlink_loop_is_visited_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    _jpeg(tmp_path / "a" / "b" / "x.jpg")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")
    files, _ = scan([tmp_path])
    assert [Path(f.path).name for f in files] == ["x.jpg"]


def test_missing_root_and_unreadable_folder_are_reported(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _jpeg(locked / "x.jpg")
    locked.chmod(0)
    try:
        files, problems = scan([tmp_path, tmp_path / "absent"])
    finally:
        locked.chmod(0o755)
    assert problems.missing == [str(tmp_path / "absent")]
    if os.geteuid() != 0:  # root reads everything
        assert files == [] and problems.unreadable_dirs


def test_single_file_root_and_duplicates_hash_equal(tmp_path: Path) -> None:
    _jpeg(tmp_path / "one.jpg")
    (tmp_path / "two.jpg").write_bytes((tmp_path / "one.jpg").read_bytes())
    files, _ = scan([tmp_path / "one.jpg", tmp_path])
    assert len({f.sha256 for f in files}) == 1 and len(files) == 3


@pytest.mark.parametrize(
    "head,expected",
    [
        (b"\xff\xd8\xff\xe0", True),
        (b"\x89PNG\r\n\x1a\n", True),
        (b"GIF89a", True),
        (b"RIFF\x00\x00\x00\x00WEBP", True),
        (b"hello world", False),
        (b"", False),
    ],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff_image(head) is expected


def test_ahead_keeps_order_passes_errors_and_stops_its_producer() -> None:
    import threading

    from producer.scan.ahead import ahead

    assert list(ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield from (1, 2)
        raise ValueError("walk failed")

    got: list[int] = []
    with pytest.raises(ValueError, match="walk failed"):
        for item in ahead(failing()):
            got.append(item)
    assert got == [1, 2]

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()  # the producer's `finally` (a hashing pool's shutdown) runs

    stream = ahead(endless(), depth=3)
    assert [next(stream), next(stream)] == [1, 2]
    stream.close()  # the consumer stops early (an error or Ctrl-C in registration)
    assert closed.is_set() and not any(t.name == "ahead" for t in threading.enumerate())


def test_small_files_hash_in_one_thread_large_ones_in_the_pool(tmp_path: Path, monkeypatch) -> None:
    """A task of small files goes to the single small-file thread (per-file system calls
    only contend for the interpreter lock), one of at least POOL_TASK_BYTES to the pool;
    either way every hash is right and the order is the walk's."""
    import threading

    from producer.scan import hash as scanning
    from producer.scan.walk import ScanProblems, candidates

    big = scanning.POOL_TASK_BYTES // 2 + 1
    contents = {f"a{i}.jpg": b"\xff\xd8\xff" + os.urandom(100) for i in range(4)}
    contents |= {f"b{i}.jpg": b"\xff\xd8\xff" + os.urandom(big) for i in range(4)}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    threads: dict[str, str] = {}
    original = scanning.hash_candidate

    def recording(candidate):  # noqa: ANN001, ANN202
        threads[os.path.basename(candidate.path)] = threading.current_thread().name
        return original(candidate)

    monkeypatch.setattr(scanning, "hash_candidate", recording)
    found = candidates([tmp_path], ScanProblems([], []))
    hashed = list(scanning.hash_stream(found, per_task=2))
    assert [os.path.basename(f.path) for f in hashed] == sorted(contents)
    assert all(f.sha256 == hashlib.sha256(contents[os.path.basename(f.path)]).hexdigest() for f in hashed)
    assert {threads[n] for n in contents if n.startswith("a")} == {"hash-small_0"}
    assert all(threads[n].startswith("hash_") for n in contents if n.startswith("b"))
