"""Uploaded images stored under the upload root, one new folder per upload, checked
before anything is recorded: image files only (by content), per-file and total size
limits, and for one zip: no entry with `..`, an absolute path or a link, no encrypted
entry, at most `max_upload_files` entries of any kind (folders included, counted from
the zip's end record before its directory is read into memory) and `max_zip_bytes`
uncompressed in all (zip bombs stop there, counted on the bytes really inflated, not on
the headers' claims). Names are cut to what a file system holds (255 bytes).

An upload is written under a temporary `.partial-` name and renamed once complete; any
refusal removes it, so a refused upload leaves nothing behind, and the folders a killed
server left half-written are removed when the next one starts (`remove_partial_uploads`)."""

from __future__ import annotations

import errno
import shutil
import stat
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, NoReturn

from emotion_batch.errors import (
    UnsafeArchiveError,
    UnsupportedUploadError,
    UploadStorageFullError,
    UploadTooLargeError,
)
from producer.scan.walk import sniff_image

CHUNK = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
SKIPPED_IN_ZIPS = ("__MACOSX",)  # resource forks macOS adds to every zip it makes
PARTIAL = ".partial-"  # an upload being written; renamed to its own name once complete
NAME_MAX_BYTES = 255  # the longest file name ext4, XFS, btrfs, ZFS and tmpfs hold
SUFFIX_ROOM = 12  # bytes kept free in a stored name for the "-N" that makes it unique
# A central-directory record is 46 bytes plus its name, extra field and comment: a
# directory larger than its claimed entries could fill is a lie about their number.
DIRECTORY_ENTRY_MAX = 46 + 4096 + 2048
_end_record = getattr(zipfile, "_EndRecData")  # noqa: B009 (the stdlib's reader of the end record, zip64 too)


@dataclass(frozen=True)
class Limits:
    """The upload limits (from Settings)."""

    max_files: int
    max_file_bytes: int
    max_zip_bytes: int


@dataclass(frozen=True)
class Upload:
    """One uploaded file as the web layer received it."""

    filename: str
    file: BinaryIO


def new_upload_dir(root: Path) -> Path:
    """A fresh, uniquely named (temporary: `.partial-`) folder under the (absolute) upload root."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = root.absolute() / f"{PARTIAL}{stamp}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        _raise_storage_error(exc)
    return folder


def remove_partial_uploads(root: Path) -> list[Path]:
    """Remove the upload folders a server stopped mid-write left under `root` (no job
    refers to them: a job is only recorded after its folder got its final name)."""
    if not root.is_dir():
        return []
    partial = [p for p in root.iterdir() if p.name.startswith(PARTIAL) and p.is_dir() and not p.is_symlink()]
    for folder in partial:
        shutil.rmtree(folder, ignore_errors=True)
    return partial


def store_upload(files: Sequence[Upload], root: Path, limits: Limits) -> Path:
    """Check and store the uploaded images (or one zip of images) in a new folder under
    `root`; return that folder. Raises a RequestRefusedError and leaves nothing otherwise."""
    if not files:
        raise UnsupportedUploadError("no file uploaded")
    if len(files) > limits.max_files:
        raise UploadTooLargeError(f"{len(files)} files: at most {limits.max_files} per upload")
    folder = new_upload_dir(root)
    try:
        _store_all(files, folder, limits)
        final = folder.with_name(folder.name.removeprefix(PARTIAL))
        folder.rename(final)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        _raise_storage_error(exc)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return final


def _store_all(files: Sequence[Upload], folder: Path, limits: Limits) -> None:
    zips = [f for f in files if _head(f.file).startswith(ZIP_MAGIC)]
    if zips and len(files) > 1:
        raise UnsupportedUploadError("upload either image files or one zip of images, not both")
    if zips:
        _extract_zip(zips[0], folder, limits)
        return
    names: set[str] = set()
    for upload in files:
        _store_image(upload, folder, names, limits)


def _raise_storage_error(exc: OSError) -> NoReturn:
    """Raise the refusal for a file system error while storing: a full disk is the
    server's (503, try later), a name it cannot hold the upload's (400); others stay
    unexpected errors."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        raise UploadStorageFullError(f"the upload folder is full ({exc.strerror}): try again later") from exc
    if exc.errno == errno.ENAMETOOLONG:
        raise UnsafeArchiveError("a file or folder name of the upload is too long for the file system") from exc
    raise exc


def _head(handle: BinaryIO, size: int = 16) -> bytes:
    handle.seek(0)
    head = handle.read(size)
    handle.seek(0)
    return head


def fit_name(name: str, limit: int = NAME_MAX_BYTES) -> str:
    """`name` cut to at most `limit` bytes of UTF-8 (whole characters), keeping a short suffix."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    ending = f".{suffix}" if dot and stem and len(suffix.encode()) < 16 else ""
    stem = name[: len(name) - len(ending)]
    return stem.encode()[: limit - len(ending.encode())].decode("utf-8", "ignore") + ending


def safe_name(name: str, used: set[str]) -> str:
    """The uploaded file's own name (no folder part), unique within the upload."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip().lstrip(".") or "image"
    base = fit_name("".join(c if c.isprintable() else "_" for c in base), NAME_MAX_BYTES - SUFFIX_ROOM)
    candidate, n = base, 1
    while candidate in used:
        stem, dot, suffix = base.rpartition(".")
        candidate = f"{stem}-{n}.{suffix}" if dot else f"{base}-{n}"
        n += 1
    used.add(candidate)
    return candidate


def _copy_limited(source: IO[bytes], target: Path, limit: int, what: str, budget: list[int] | None = None) -> None:
    """Copy at most `limit` bytes (and no more than what is left of `budget`), else refuse."""
    written = 0
    with open(target, "xb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise UploadTooLargeError(f"{what}: larger than {limit} bytes")
            if budget is not None:
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise UploadTooLargeError(f"zip: more than its {budget[1]} bytes uncompressed in all")
            out.write(chunk)


def _store_image(upload: Upload, folder: Path, names: set[str], limits: Limits) -> None:
    if not sniff_image(_head(upload.file)):
        raise UnsupportedUploadError(f"{upload.filename!r} is not an image file (JPEG, PNG, GIF, BMP, TIFF, WebP...)")
    target = folder / safe_name(upload.filename, names)
    _copy_limited(upload.file, target, limits.max_file_bytes, upload.filename)


def _entry_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The entry's path parts, refusing absolute paths, `..` and links."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"zip entry {name!r} is a link")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"zip entry {name!r} is encrypted")
    posix = name.replace("\\", "/")
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if posix.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        raise UnsafeArchiveError(f"zip entry {name!r} points outside the upload")
    return tuple(fit_name(p) for p in parts)


def _count_entries(upload: Upload, limits: Limits) -> None:
    """Refuse a zip of too many entries from its end record alone: zipfile would hold
    every entry of the directory in memory (folders too) before any could be counted."""
    try:
        end = _end_record(upload.file)
    except OSError as exc:
        raise UnsafeArchiveError(f"{upload.filename!r} is not a readable zip: {exc}") from exc
    if end is None:
        raise UnsafeArchiveError(f"{upload.filename!r} is not a readable zip: no end of central directory")
    entries, size = end[4], end[5]  # zipfile's _ECD_ENTRIES_TOTAL and _ECD_SIZE
    if entries > limits.max_files:
        raise UploadTooLargeError(
            f"zip holds {entries} entries: at most {limits.max_files} per upload (folders and every other entry count)"
        )
    if size > max(entries, 1) * DIRECTORY_ENTRY_MAX:
        raise UnsafeArchiveError(f"{upload.filename!r}: its directory is larger than its {entries} entries can fill")


def _extract_zip(upload: Upload, folder: Path, limits: Limits) -> None:
    _count_entries(upload, limits)
    try:
        archive = zipfile.ZipFile(upload.file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{upload.filename!r} is not a readable zip: {exc}") from exc
    with archive:
        if len(archive.infolist()) > limits.max_files:  # an end record that understated them
            raise UploadTooLargeError(f"zip holds {len(archive.infolist())} entries: at most {limits.max_files}")
        entries = []
        for info in archive.infolist():
            parts = _entry_parts(info)  # every entry is checked, even the skipped ones
            if info.is_dir() or not parts or parts[0] in SKIPPED_IN_ZIPS or parts[-1].startswith("."):
                continue
            entries.append((info, parts))
        if not entries:
            raise UnsupportedUploadError(f"{upload.filename!r} holds no file")
        if len(entries) > limits.max_files:
            raise UploadTooLargeError(f"zip holds {len(entries)} files: at most {limits.max_files} per upload")
        claimed = sum(info.file_size for info, _ in entries)
        if claimed > limits.max_zip_bytes:
            raise UploadTooLargeError(f"zip: {claimed} bytes uncompressed, more than {limits.max_zip_bytes}")
        budget = [limits.max_zip_bytes, limits.max_zip_bytes]
        for info, parts in entries:
            _extract_entry(archive, info, parts, folder, limits, budget)


def _extract_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    parts: tuple[str, ...],
    folder: Path,
    limits: Limits,
    budget: list[int],
) -> None:
    target = folder.joinpath(*parts)
    if not target.resolve().is_relative_to(folder.resolve()):
        raise UnsafeArchiveError(f"zip entry {info.filename!r} points outside the upload")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source:
            if not sniff_image(source.read(16)):
                raise UnsupportedUploadError(f"zip entry {info.filename!r} is not an image file")
        with archive.open(info) as source:
            _copy_limited(source, target, limits.max_file_bytes, info.filename, budget)
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:  # bad CRC, truncated, odd method
        raise UnsafeArchiveError(f"zip entry {info.filename!r} cannot be read: {exc}") from exc
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise UnsafeArchiveError(
            f"zip entry {info.filename!r} clashes with another entry (the same name twice, "
            "or a file and a folder of one name)"
        ) from exc
