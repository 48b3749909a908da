"""Whole folders in the walk: an unchanged folder travels as one item, not as its files.

The walk yields a folder's files together. `whole_folders` regroups them: each folder of
image files is summed up by the digest of its listing (every file's path, size and
modification time, to the nanosecond), and `match` (the database, `db.folders`) says
which folders an earlier job registered with the same listing and holds finished under
the result key in use, one row per file. Such a folder becomes one `ScannedFolder` with
`shared_from` set, and the job shares that job's rows of it in one statement; no file of
it is looked up, staged or counted in Python. Every other folder's files pass on as they
came, followed by their `ScannedFolder` (no `shared_from`), which the job records so that
a later run can match it.

The database checks what the digest cannot (the rows' count, status and result key, and
that no worker found a file changed), so that a stale record can only cost the fast
path, never a file.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from db.records import Candidate, ScannedFolder

# Folders are looked up together, this many files at a time, by a thread of their own
# while the walk goes on (the files of two such batches wait in memory meanwhile, about
# 200 bytes each; the hashing must have as many files in hand, or it runs out of work
# while they wait: producer.stream gives it twice LOOKUP_FILES); a folder holding more
# than MAX_FOLDER_FILES files passes on file by file, never held whole. Nothing is held
# when no folder under the roots was ever recorded. Why 20,000: bench/RESULTS.md,
# "Folder look-ups".
LOOKUP_FILES = 20_000
MAX_FOLDER_FILES = 20_000


FolderMatch = Callable[[list[ScannedFolder]], dict[str, int]]  # {folder: earlier job} of the unchanged ones


def listing_digest(files: Sequence[Candidate]) -> str:
    """The sha256 of a folder's listing: paths, sizes and modification times in walk order."""
    digest = hashlib.sha256("\0".join([c.path for c in files]).encode("utf-8", "surrogateescape"))
    digest.update(array("q", [c.size for c in files]).tobytes())
    digest.update(array("q", [c.mtime_ns for c in files]).tobytes())
    return digest.hexdigest()


def _listed(group: list[Candidate]) -> ScannedFolder | None:
    """The folder of `group` (all of one folder's files), or None when it cannot be shared
    whole: it holds a video or a file with an error (too large)."""
    if any(c.kind != "image" or c.error is not None for c in group):
        return None
    return ScannedFolder(group[0].folder, len(group), listing_digest(group))


Held = list[tuple[list[Candidate], ScannedFolder | None]]  # folders walked: their files, their summary


class _Lookups:
    """Folders walked, held until the look-up thread says which are unchanged, then
    passed on in walk order (the database works outside the interpreter lock: the walk
    goes on meanwhile)."""

    def __init__(self, match: FolderMatch | None, pool: ThreadPoolExecutor) -> None:
        self.match, self.pool = match, pool
        self.held: Held = []
        self.held_files = 0
        self.asked: deque[tuple[Held, Future[dict[str, int]] | None]] = deque()

    def hold(self, group: list[Candidate], folder: ScannedFolder | None) -> None:
        self.held.append((group, folder))
        self.held_files += len(group)

    def ask(self) -> None:
        """Hand the held folders to the look-up thread."""
        folders = [folder for _, folder in self.held if folder is not None]
        answer = self.pool.submit(self.match, folders) if self.match is not None and folders else None
        self.asked.append((self.held, answer))
        self.held, self.held_files = [], 0

    def release(self, waiting: int) -> Iterator[Candidate | ScannedFolder]:
        """Pass on the folders asked about, in order, until `waiting` look-ups are left."""
        while len(self.asked) > waiting:
            batch, answer = self.asked.popleft()
            unchanged = answer.result() if answer is not None else {}
            for group, folder in batch:
                earlier = unchanged.get(folder.folder) if folder is not None else None
                if folder is not None and earlier is not None:
                    yield folder._replace(shared_from=earlier)
                    continue
                yield from group
                if folder is not None:
                    yield folder


def whole_folders(
    found: Iterable[Candidate],
    match: FolderMatch | None,
    partial_first: bool = False,
    exclude: frozenset[str] = frozenset(),
    lookup_files: int = LOOKUP_FILES,
    max_files: int = MAX_FOLDER_FILES,
) -> Iterator[Candidate | ScannedFolder]:
    """`found` in walk order, each folder `match` knows as unchanged replaced by one
    `ScannedFolder` (see the module docstring). `partial_first`: the first folder may be
    missing files (a resumed walk starts where the interrupted one stopped), so it is
    never summed up, nor are the folders in `exclude` (those holding a file submitted on
    its own, met twice). Without `match`, folders are summed up (to be recorded) but none
    is replaced, and nothing is held."""
    group: list[Candidate] = []
    current: str | None = None
    whole = not partial_first  # whether `group` holds every file of its folder
    passing = False  # the current folder is too large to hold: its files pass on as they come
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="folders") as pool:
        lookups = _Lookups(match, pool)
        for candidate in found:
            if candidate.folder != current:
                if group:
                    lookups.hold(group, _listed(group) if whole and current not in exclude else None)
                    if match is None or lookups.held_files >= lookup_files:
                        lookups.ask()
                        yield from lookups.release(0 if match is None else 1)  # one look-up runs meanwhile
                whole = whole or current is not None
                group, current, passing = [], candidate.folder, False
            if passing:
                yield candidate
                continue
            group.append(candidate)
            if len(group) > max_files:
                lookups.ask()
                yield from lookups.release(0)
                yield from group
                group, passing = [], True
        if group:
            lookups.hold(group, _listed(group) if whole and current not in exclude else None)
        lookups.ask()
        yield from lookups.release(0)
