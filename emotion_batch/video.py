"""Videos: recognise them by content, probe what they really hold, and sample frames.

OpenCV's bundled FFmpeg (`cv2.VideoCapture(path, cv2.CAP_FFMPEG)`) does the decoding.
A video is sampled at `fps` frames per second: sample `k` is the first native frame at
or after `k / fps` seconds. Frames between samples are only grabbed (demuxed and
decoded as the codec needs, never converted to pixels), or skipped by seeking when the
gap is long, so memory and time follow the samples kept, not the video's length.

A container can lie about its length (a truncated download, a broken muxer): `probe`
checks that the last frame the container claims can be read, and when it cannot, finds
the real end by bisection (a few seeks), so the analysis covers what the file holds.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotion_batch.errors import (
    AudioOnlyError,
    CorruptVideoError,
    EmptyFileError,
    FileMissingError,
    UnreadableFileError,
    VideoTooLongError,
)

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .qt .avi .mkv .webm .mpg .mpeg .mts .m2ts .ts .3gp .3g2 .wmv .flv .ogv".split()
)
_ISO_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")
_EBML = b"\x1a\x45\xdf\xa3"  # Matroska and WebM
_ASF = b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"  # WMV
PROBE_TAIL_BYTES = 1 << 20


def sniff_video(head: bytes) -> bool:
    """True when the first bytes are a video container's signature (not HEIC/AVIF/M4A)."""
    if head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS + _ISO_AUDIO_BRANDS
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):  # QuickTime without ftyp
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    if head[:4] == b"\x00\x00\x01\xba" or head[:4] == b"\x00\x00\x01\xb3":  # MPEG-PS
        return True
    if head[:3] == b"FLV":
        return True
    return head.startswith(_EBML) or head.startswith(_ASF)


def is_video(path: Path) -> bool:
    """A video by content, or by a video extension (an unreadable one is still reported)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return path.suffix.lower() in VIDEO_EXTENSIONS
    if sniff_video(head):
        return True
    return path.suffix.lower() in VIDEO_EXTENSIONS and not head[4:8] == b"ftyp"


@dataclass(frozen=True)
class VideoInfo:
    """What a video really holds: the frames that can be read, and what it claimed."""

    width: int
    height: int
    native_fps: float
    frames: int  # native frames that can really be read
    claimed_frames: int
    note: str | None = None  # why less than claimed is analysed

    @property
    def duration_s(self) -> float:
        return self.frames / self.native_fps

    @property
    def claimed_s(self) -> float:
        return self.claimed_frames / self.native_fps


def sample_frame(k: int, fps: float, native_fps: float) -> int:
    """The native frame index of sample `k`: the first frame at or after `k / fps` s."""
    return max(0, math.ceil(k * native_fps / fps - 1e-6))


def sample_range(start_s: float, end_s: float, fps: float) -> range:
    """Sample numbers whose time lies in [start_s, end_s)."""
    return range(math.ceil(start_s * fps - 1e-9), math.ceil(end_s * fps - 1e-9))


def expected_samples(info_frames: int, native_fps: float, fps: float, start_s: float, end_s: float) -> list[int]:
    """Samples of [start_s, end_s) that fall on a readable native frame."""
    return [k for k in sample_range(start_s, end_s, fps) if sample_frame(k, fps, native_fps) < info_frames]


def _open(path: str | Path) -> cv2.VideoCapture:
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)


def _readable(cap: cv2.VideoCapture, index: int) -> bool:
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    return bool(cap.grab())


def _real_frames(cap: cv2.VideoCapture, claimed: int, native_fps: float) -> int:
    """Frames that can be read: the claim when its last frame reads, else bisection
    to within a second (each step is one seek), then frame by frame."""
    if _readable(cap, claimed - 1):
        return claimed
    good, bad = 0, claimed - 1
    step = max(1, int(native_fps))
    while bad - good > step:
        middle = (good + bad) // 2
        if _readable(cap, middle):
            good = middle
        else:
            bad = middle
    cap.set(cv2.CAP_PROP_POS_FRAMES, good)
    end = good
    while end < bad and cap.grab():
        end += 1
    return max(end, 1)


def _audio_only(path: Path) -> bool:
    """A container whose tracks are all sound (MP4/MOV handler types, Matroska codec ids)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        data = handle.read(PROBE_TAIL_BYTES)
        if size > PROBE_TAIL_BYTES:
            handle.seek(max(PROBE_TAIL_BYTES, size - PROBE_TAIL_BYTES))
            data += handle.read()
    if data[4:8] == b"ftyp" or b"moov" in data[:64]:
        handlers = set(re.findall(rb"hdlr.{8}(vide|soun)", data, re.S))
        return handlers == {b"soun"}
    if data.startswith(_EBML):
        codecs = {m[:1] for m in re.findall(rb"\x86[\x81-\xff]([AVS])_", data)}
        return codecs == {b"A"} or codecs == {b"A", b"S"}
    return False


def probe(path: str | Path, max_seconds: float | None = None) -> VideoInfo:
    """Open a video and find what it really holds, or raise a clear `VideoError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise FileMissingError(str(path)) from exc
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or str(exc)) from exc
    if size == 0:
        raise EmptyFileError("0 bytes")
    cap = _open(path)
    try:
        if not cap.isOpened():
            if _audio_only(path):
                raise AudioOnlyError("the file holds sound tracks only")
            raise CorruptVideoError("OpenCV's FFmpeg cannot open it (damaged, cut short or an unknown format)")
        native_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width <= 0 or height <= 0:
            raise AudioOnlyError("no picture size")
        # any declared rate is sampled by time (a high-speed camera's 10,000 fps too)
        if not (0 < native_fps < math.inf) or claimed <= 0:
            raise CorruptVideoError(f"no usable frame rate or frame count (fps {native_fps:g}, frames {claimed})")
        if not cap.grab():
            raise CorruptVideoError("not one frame can be decoded")
        frames = _real_frames(cap, claimed, native_fps)
    finally:
        cap.release()
    note = None
    if frames < claimed:
        note = (
            f"container claims {claimed / native_fps:.1f} s but the stream ends at "
            f"{frames / native_fps:.1f} s (truncated or a wrong header): analysed what it holds"
        )
    info = VideoInfo(width, height, native_fps, frames, claimed, note)
    if max_seconds is not None and info.duration_s > max_seconds:
        raise VideoTooLongError(f"{info.duration_s:.0f} s is over the {max_seconds:g} s limit (VIDEO_MAX_SECONDS)")
    return info


@dataclass
class _Costs:
    """Seconds a seek (to a sample) and a grab (per skipped frame) took so far."""

    seek: float | None = None
    grab: float | None = None

    def prefer_seek(self, gap: int) -> bool:
        if gap <= 1:
            return False
        if self.seek is None or self.grab is None:
            return self.seek is None  # try each way once
        return self.seek < self.grab * gap

    def record(self, seek: bool, gap: int, seconds: float) -> None:
        if seek:
            self.seek = seconds if self.seek is None else 0.8 * self.seek + 0.2 * seconds
        else:
            per_frame = seconds / (gap + 1)
            self.grab = per_frame if self.grab is None else 0.8 * self.grab + 0.2 * per_frame


@dataclass(frozen=True)
class Sample:
    """One sampled frame: its sample number, time and pixels (RGB), or why it is missing."""

    k: int
    timestamp_s: float
    rgb: np.ndarray | None
    error: str | None = None


def read_samples(
    path: str | Path, samples: list[int], fps: float, native_fps: float, seek_gap: int | None = None
) -> Iterator[Sample]:
    """Decode only the frames of `samples` (ascending sample numbers), one at a time.

    Frames between two samples are grabbed (decoded as the codec needs, never converted
    to pixels) or skipped with a seek, whichever has been cheaper so far in this file (a
    seek costs a decode from the previous keyframe, so it pays when keyframes are close
    and samples far apart). `seek_gap` forces the choice: seek when more than that many
    frames lie between. A sample that cannot be read is yielded with its error, so every
    sample has exactly one outcome.
    """
    cap = _open(path)
    try:
        if not cap.isOpened():
            for k in samples:
                yield Sample(
                    k,
                    sample_frame(k, fps, native_fps) / native_fps,
                    None,
                    f"{CorruptVideoError.reason}: cannot open the file any more",
                )
            return
        costs = _Costs()
        position = 0  # the native frame the next grab() returns
        lost = False  # after a failed read, the next sample is reached by seeking
        for k in samples:
            target = sample_frame(k, fps, native_fps)
            timestamp = target / native_fps
            gap = target - position
            seek = lost or (gap > seek_gap if seek_gap is not None else costs.prefer_seek(gap))
            started = time.perf_counter()
            if seek and gap > 0:
                cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                position = target
            while position < target and cap.grab():
                position += 1
            lost = position < target or not cap.grab()
            if not lost and gap > 0:
                costs.record(seek, gap, time.perf_counter() - started)
            if lost:
                yield Sample(k, timestamp, None, f"{CorruptVideoError.reason}: no frame at {timestamp:.2f} s")
                continue
            position += 1
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                yield Sample(
                    k, timestamp, None, f"{CorruptVideoError.reason}: frame at {timestamp:.2f} s cannot be decoded"
                )
                continue
            yield Sample(k, timestamp, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
