"""What registration accepts: the files and folders the producer's walk found and hashed.

Defined here, beside the registration that reads them, so that db/ needs nothing of the
producer (producer.scan makes them). Named tuples, not dataclasses: a million of them are
made per million files walked.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Candidate(NamedTuple):
    """A file found by the walk, stat'ed once (size and mtime), not yet read."""

    path: str
    folder: str
    size: int
    mtime: datetime | None
    error: str | None = None
    kind: str = "image"  # by extension or first bytes; hashing reads the content and decides
    mtime_ns: int = 0  # the modification time to the nanosecond (a folder's listing digest)


class ScannedFile(NamedTuple):
    """One candidate image: where it is and what its content hashes to."""

    path: str
    folder: str
    sha256: str
    size: int
    mtime: datetime | None
    error: str | None = None
    read: bool = True  # False: hash reused from an earlier image (same path, size, mtime)
    kind: str = "image"  # or "video" (by content when read, else by extension)
    shared: int | None = None  # that earlier image, when the job shares it as it is


class ScannedFolder(NamedTuple):
    """A folder walked whole (`producer.scan.folders`): `files` image files whose listing
    (paths, sizes, modification times) hashes to `digest`. With `shared_from`, the folder
    is unchanged since that job registered it and its files are not in the stream: the
    job shares that job's rows of it. Without, its files came just before it."""

    folder: str
    files: int
    digest: str
    shared_from: int | None = None
