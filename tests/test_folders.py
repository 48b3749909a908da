"""The walk regrouped by folder (producer.scan.folders), on real files: which folders are
summed up, what their digest depends on, and that every file comes out exactly once,
in walk order, whatever the database answers. The database side (db.folders) is tested
with the streaming submit (tests/test_streaming.py)."""

from __future__ import annotations

import os
from pathlib import Path

from db.records import Candidate, ScannedFolder
from producer.scan.folders import whole_folders
from producer.scan.walk import ScanProblems, candidates


def _files(root: Path, layout: dict[str, int]) -> None:
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / folder / f"{i:03d}.jpg").write_bytes(b"\xff\xd8\xff" + folder.encode() + bytes([i]))


def _walk(root: Path, match=None, **options) -> list[Candidate | ScannedFolder]:  # noqa: ANN001
    return list(whole_folders(candidates([root], ScanProblems([], [])), match, **options))


def _folders(items: list[Candidate | ScannedFolder]) -> dict[str, ScannedFolder]:
    return {Path(i.folder).name: i for i in items if isinstance(i, ScannedFolder)}


def _paths(items: list[Candidate | ScannedFolder]) -> list[str]:
    return [i.path for i in items if isinstance(i, Candidate)]


def test_each_folder_is_summed_up_after_its_files_and_matched_ones_replace_them(tmp_path: Path) -> None:
    _files(tmp_path, {"a": 3, "b": 2, "b/c": 4, "d": 1})
    plain = _walk(tmp_path)
    every = [c.path for c in candidates([tmp_path], ScanProblems([], []))]
    assert _paths(plain) == every and len(every) == 10
    folders = _folders(plain)
    assert {name: f.files for name, f in folders.items()} == {"a": 3, "b": 2, "c": 4, "d": 1}
    assert all(f.shared_from is None for f in folders.values())
    # each folder's summary comes right after its last file
    for index, item in enumerate(plain):
        if isinstance(item, ScannedFolder):
            assert isinstance(plain[index - 1], Candidate) and plain[index - 1].folder == item.folder

    asked: list[list[str]] = []

    def match(found: list[ScannedFolder]) -> dict[str, int]:
        asked.append([Path(f.folder).name for f in found])
        return {f.folder: 7 for f in found if Path(f.folder).name in ("b", "d")}

    shared = _walk(tmp_path, match)
    assert asked == [["a", "b", "c", "d"]]  # one look-up for the lot (under LOOKUP_FILES files)
    assert [Path(p).parent.name for p in _paths(shared)] == ["a"] * 3 + ["c"] * 4
    assert {n: (f.files, f.shared_from) for n, f in _folders(shared).items()} == {
        "a": (3, None),
        "b": (2, 7),
        "c": (4, None),
        "d": (1, 7),
    }
    assert [f.digest for f in _folders(shared).values()] == [f.digest for f in folders.values()]
    # in walk order: a's files, a, b (whole), c's files, c, d (whole)
    kinds = ["f" if isinstance(i, Candidate) else Path(i.folder).name for i in shared]
    assert kinds == ["f", "f", "f", "a", "b", "f", "f", "f", "f", "c", "d"]


def test_the_digest_follows_names_sizes_and_modification_times(tmp_path: Path) -> None:
    _files(tmp_path, {"a": 3, "b": 3})
    before = {n: f.digest for n, f in _folders(_walk(tmp_path)).items()}
    assert len(set(before.values())) == 2
    assert {n: f.digest for n, f in _folders(_walk(tmp_path)).items()} == before  # stable

    target = tmp_path / "a" / "001.jpg"
    info = target.stat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 1))  # one nanosecond later
    after = {n: f.digest for n, f in _folders(_walk(tmp_path)).items()}
    assert after["a"] != before["a"] and after["b"] == before["b"]

    (tmp_path / "b" / "002.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 40)  # another size
    (tmp_path / "b" / "000.jpg").rename(tmp_path / "b" / "009.jpg")  # another name
    assert _folders(_walk(tmp_path))["b"].digest != after["b"]


def test_folders_that_cannot_be_shared_whole_are_not_summed_up(tmp_path: Path) -> None:
    _files(tmp_path, {"big": 2, "clip": 2, "first": 3, "huge": 5, "plain": 2})
    (tmp_path / "big" / "large.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * 5000)  # over the size limit
    (tmp_path / "clip" / "movie.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"0" * 50)
    items = list(
        whole_folders(
            candidates([tmp_path], ScanProblems([], []), max_bytes=1000),
            lambda found: {f.folder: 1 for f in found},
            max_files=4,
        )
    )
    # an error, a video, a folder larger than max_files: their files pass on, no summary
    assert set(_folders(items)) == {"first", "plain"}
    assert all(f.shared_from == 1 for f in _folders(items).values())
    names = [Path(p).parent.name for p in _paths(items)]
    assert names == ["big"] * 3 + ["clip"] * 3 + ["huge"] * 5

    # a resumed walk's first folder may lack its first files: never summed up
    rest = list(candidates([tmp_path], ScanProblems([], []), max_bytes=1000))[8:]
    assert Path(rest[0].folder).name == "first"
    resumed = list(whole_folders(iter(rest), lambda found: {f.folder: 1 for f in found}, partial_first=True))
    assert set(_folders(resumed)) == {"huge", "plain"} and _paths(resumed)[0] == rest[0].path


def test_look_ups_are_bounded_and_nothing_is_lost_or_repeated(tmp_path: Path) -> None:
    layout = {f"f{i:02d}": 1 + i % 4 for i in range(30)}
    _files(tmp_path, layout)
    sizes: list[int] = []

    def every_other(found: list[ScannedFolder]) -> dict[str, int]:
        sizes.append(sum(f.files for f in found))
        return {f.folder: 3 for f in found if int(Path(f.folder).name[1:]) % 2}

    items = _walk(tmp_path, every_other, lookup_files=10)
    assert max(sizes) < 10 + 4 and sum(sizes) == sum(layout.values())
    folders = _folders(items)
    assert set(folders) == set(layout)
    files_out = {Path(p).parent.name for p in _paths(items)}
    assert files_out == {n for n in layout if int(n[1:]) % 2 == 0}
    # each file comes out once, or its folder whole once
    assert len(_paths(items)) + sum(f.files for f in folders.values() if f.shared_from) == sum(layout.values())
