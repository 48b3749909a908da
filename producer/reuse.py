"""What an earlier analysis spares a submit: the key its results are reused under, and
the weight of each file in a registration chunk by how much of it was spared."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from db.records import ScannedFile, ScannedFolder
from db.results import ResultKey
from emotion_batch.config import Settings
from emotion_batch.messages import chunked

CHUNK = 1000  # files read (new or changed) registered per transaction
# Files not read need less work per file and share a transaction in larger numbers: one
# whose hash is reused but which becomes a new row (re-run under another model version)
# up to 5 x CHUNK, one shared as it is (unchanged since an analysis under the same result
# key: no new row, nothing queued) up to 20 x CHUNK, which makes an unchanged re-run a few
# large set-based writes instead of many small ones (bench/RESULTS.md, "Chunk weights").
# A chunk holds CHUNK * READ_UNITS units: a file read costs READ_UNITS, one whose hash is
# reused REUSED_UNITS, one shared SHARED_UNITS.
READ_UNITS, REUSED_UNITS, SHARED_UNITS = 20, 4, 1


def job_settings(settings: Settings | None, detector: str | None) -> Settings | None:
    """The settings a worker analyses a job with: its own detector, if it names one."""
    from emotion_batch.detect import for_detector

    return for_detector(settings, detector) if settings is not None else None


def reuse_key(backend: str, settings: Settings | None, force: bool) -> ResultKey | None:
    """The key a worker with these settings stores its results under, computed without
    loading a model (file hashes), so earlier results can be reused at submit time; None
    (no reuse) with `force`, without settings, or when a model file is absent."""
    if force or settings is None:
        return None
    from emotion_batch.classify import expected_model_version
    from emotion_batch.detect import expected_detector_version

    version = expected_model_version(backend, settings)
    detector = expected_detector_version(settings)
    return ResultKey(backend, version, detector) if version and detector else None


def units(item: ScannedFile | ScannedFolder) -> int:
    """What registering `item` costs, in chunk units (see READ_UNITS)."""
    if isinstance(item, ScannedFolder):  # its files, when shared whole; else already counted one by one
        return item.files * SHARED_UNITS if item.shared_from is not None else 0
    return READ_UNITS if item.read else REUSED_UNITS if item.shared is None else SHARED_UNITS


def weighted_chunks(
    items: Iterable[ScannedFile | ScannedFolder], size: int
) -> Iterator[list[ScannedFile | ScannedFolder]]:
    """`size` files read, `5 * size` not read but new rows, `20 * size` shared, or a mix
    in proportion (see READ_UNITS)."""
    return chunked(items, size * READ_UNITS, units)
