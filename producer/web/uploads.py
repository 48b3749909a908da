"""Uploaded images stored under the upload root, one new folder per upload, checked
before anything is recorded: image files only (by content), per-file and total size
limits, and for one zip: no entry with `..`, an absolute path or a link, no encrypted
entry, at most `max_upload_files` entries and `max_zip_bytes` uncompressed in all (zip
bombs stop there, counted on the bytes really inflated, not on the headers' claims).

Any refusal removes the folder: a refused upload leaves nothing behind."""

from __future__ import annotations

import shutil
import stat
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from emotion_batch.errors import UnsafeArchiveError, UnsupportedUploadError, UploadTooLargeError
from emotion_batch.scan import sniff_image

CHUNK = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
SKIPPED_IN_ZIPS = ("__MACOSX",)  # resource forks macOS adds to every zip it makes


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
    """A fresh, uniquely named folder under the (absolute) upload root."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = root.absolute() / f"{stamp}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def store_upload(files: Sequence[Upload], root: Path, limits: Limits) -> Path:
    """Check and store the uploaded images (or one zip of images) in a new folder under
    `root`; return that folder. Raises a RequestRefusedError and leaves nothing otherwise."""
    if not files:
        raise UnsupportedUploadError("no file uploaded")
    if len(files) > limits.max_files:
        raise UploadTooLargeError(f"{len(files)} files: at most {limits.max_files} per upload")
    folder = new_upload_dir(root)
    try:
        zips = [f for f in files if _head(f.file).startswith(ZIP_MAGIC)]
        if zips and len(files) > 1:
            raise UnsupportedUploadError("upload either image files or one zip of images, not both")
        if zips:
            _extract_zip(zips[0], folder, limits)
        else:
            names: set[str] = set()
            for upload in files:
                _store_image(upload, folder, names, limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _head(handle: BinaryIO, size: int = 16) -> bytes:
    handle.seek(0)
    head = handle.read(size)
    handle.seek(0)
    return head


def safe_name(name: str, used: set[str]) -> str:
    """The uploaded file's own name (no folder part), unique within the upload."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip().lstrip(".") or "image"
    base = "".join(c if c.isprintable() else "_" for c in base)[:200]
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
    return parts


def _extract_zip(upload: Upload, folder: Path, limits: Limits) -> None:
    try:
        archive = zipfile.ZipFile(upload.file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{upload.filename!r} is not a readable zip: {exc}") from exc
    with archive:
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
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with archive.open(info) as source:
            if not sniff_image(source.read(16)):
                raise UnsupportedUploadError(f"zip entry {info.filename!r} is not an image file")
        with archive.open(info) as source:
            _copy_limited(source, target, limits.max_file_bytes, info.filename, budget)
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:  # bad CRC, truncated, odd method
        raise UnsafeArchiveError(f"zip entry {info.filename!r} cannot be read: {exc}") from exc
    except FileExistsError as exc:
        raise UnsafeArchiveError(f"zip entry {info.filename!r} appears twice") from exc
