"""Sampling a live source: a camera, an RTSP/HTTP MJPEG/HLS stream, or a video file played
at its own pace, read with OpenCV and sampled at `fps` frames per second of wall-clock time.

Every frame is read (a live source's buffer must be drained, or its frames grow old) and
one is kept each `1 / fps` seconds. A segment is handed on every `segment_s` seconds, or
after `max_frames` frames when that comes first (a task stays about one batch). A source
that stops giving frames is reopened with a growing pause for at most `reopen_s` seconds;
a video file that ends has simply ended.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from emotion_batch.errors import LiveSourceError

CAMERA = re.compile(r"^(?:\d+|/dev/video\d+)$")
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000
MAX_SEGMENT_FRAMES = 30  # a segment is handed on after this many frames at most (about one batch)


def is_camera(source: str) -> bool:
    """A local camera: a device index (`0`) or a video device (`/dev/video0`)."""
    return bool(CAMERA.match(source.strip()))


def shown(source: str) -> str:
    """`source` as it may be stored, shown and logged: a URL's password replaced by ***
    (an RTSP camera's URL often carries one)."""
    parts = urlsplit(source)
    try:
        if parts.password is None:
            return source
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL with a usable port: nothing of it is shown
        return "(an unparsable URL)"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}{port}"))


def open_source(source: str) -> cv2.VideoCapture:
    """An opened capture of `source`, or `LiveSourceError` saying why it cannot be read."""
    source = source.strip()
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
    elif is_camera(source):
        cap = cv2.VideoCapture(source, cv2.CAP_V4L2)
    else:  # a stalled network source must not block a read (or a Ctrl-C) for ever
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        why = "cannot be opened (no such camera, an unreachable URL or an unknown format)"
        raise LiveSourceError(f"{shown(source)}: {why}")
    return cap


def file_pace(source: str, cap: cv2.VideoCapture) -> float | None:
    """A video file's native frame rate (it is then played at that pace), else None."""
    if not Path(source).is_file():
        return None
    native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return native if 0 < native < math.inf else None


@dataclass(frozen=True)
class LiveOptions:
    """How a live source is sampled and split into segments."""

    fps: float
    segment_s: float
    duration_s: float | None = None
    reopen_s: float = 60.0
    max_frames: int = MAX_SEGMENT_FRAMES

    @property
    def segment_frames(self) -> int:
        """Frames after which a segment is handed on even before `segment_s`."""
        return max(1, min(self.max_frames, math.ceil(self.fps * self.segment_s)))


@dataclass
class LiveResult:
    """What a live run sampled, and when and why it stopped."""

    frames: int = 0
    segments: int = 0
    seconds: float = 0.0
    reason: str = ""


class Sink(Protocol):
    """Where sampled frames go (the spool) and when segments are handed on (the queue)."""

    def frame(self, segment_no: int, k: int, captured: float, bgr: np.ndarray) -> None:
        """Store sample `k` of `segment_no`, captured at epoch second `captured`."""

    def segment(self, segment_no: int, start_s: float, end_s: float, frames: int) -> None:
        """Hand on a finished segment holding `frames` frames."""


@dataclass
class _Clock:
    """Wall-clock start and seconds since it (monotonic, so a clock change never bends it)."""

    epoch: float = field(default_factory=time.time)
    origin: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.origin


def reopen(
    source: str, options: LiveOptions, stop: Callable[[], bool], notify: Callable[[str], None]
) -> cv2.VideoCapture | None:
    """Open `source` again, pausing 0.5, 1, 2 ... (at most 5) seconds between tries, for at
    most `options.reopen_s` seconds; None when it stays away or a stop is asked."""
    deadline = time.monotonic() + options.reopen_s
    pause = 0.5
    while not stop() and time.monotonic() < deadline:
        try:
            cap = open_source(source)
        except LiveSourceError:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 5.0)
            continue
        notify(f"{shown(source)}: reopened")
        return cap
    return None


class _Sampler:
    """One live run's state: the current segment, the next sample's due time."""

    def __init__(self, options: LiveOptions, sink: Sink) -> None:
        self.options, self.sink, self.clock = options, sink, _Clock()
        self.result = LiveResult()
        self.segment_no, self.segment_start, self.segment_count = 0, 0.0, 0
        self.due = 0.0

    def offer(self, bgr: np.ndarray, at: float) -> None:
        """A frame read `at` seconds after the start: kept when a sample is due."""
        if at < self.due:
            return
        self.sink.frame(self.segment_no, self.result.frames, self.clock.epoch + at, bgr)
        self.result.frames += 1
        self.segment_count += 1
        # a late frame moves the schedule on: samples never bunch up to catch up
        self.due = max(self.due + 1 / self.options.fps, at)
        if self.segment_count >= self.options.segment_frames:
            self.hand_on(at)

    def tick(self, at: float) -> None:
        """Hand on the current segment once it spans `segment_s` seconds."""
        if self.segment_count and at - self.segment_start >= self.options.segment_s:
            self.hand_on(at)

    def hand_on(self, at: float) -> None:
        if not self.segment_count:
            return
        self.sink.segment(self.segment_no, self.segment_start, at, self.segment_count)
        self.result.segments += 1
        self.segment_no, self.segment_start, self.segment_count = self.segment_no + 1, at, 0

    def finish(self, reason: str) -> LiveResult:
        at = self.clock.elapsed()
        self.hand_on(at)  # the last partial segment is analysed too
        self.result.seconds, self.result.reason = at, reason
        return self.result


def _pace(cap: cv2.VideoCapture, native_fps: float | None, clock: _Clock) -> None:
    """A file plays at its own rate: wait until the wall clock reaches the frame's time."""
    if native_fps is None:
        return
    ahead = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 - clock.elapsed()
    if ahead > 0:
        time.sleep(ahead)


def _over(options: LiveOptions, at: float) -> bool:
    return options.duration_s is not None and at >= options.duration_s


def sample_live(
    source: str,
    cap: cv2.VideoCapture,
    options: LiveOptions,
    sink: Sink,
    stop: Callable[[], bool],
    notify: Callable[[str], None] = lambda _line: None,
) -> LiveResult:
    """Sample the opened `cap` of `source` into `sink` until the duration, a stop or the
    end of the source; return what was sampled and why it stopped (`reason`)."""
    sampler = _Sampler(options, sink)
    native = file_pace(source, cap)
    try:
        while True:
            if stop():
                return sampler.finish("interrupted")
            if _over(options, sampler.clock.elapsed()):
                return sampler.finish(f"--duration {options.duration_s:g} s reached")
            ok, bgr = cap.read()
            if not ok:
                if native is not None:
                    return sampler.finish("the source ended")
                dropped = sampler.clock.elapsed()
                notify(f"{shown(source)}: no frame at {dropped:.1f} s; reopening for up to {options.reopen_s:g} s")
                cap.release()
                sampler.tick(dropped)
                again = reopen(source, options, stop, notify)
                if again is None and stop():
                    return sampler.finish("interrupted")
                if again is None:
                    return sampler.finish(
                        f"the source dropped at {dropped:.1f} s and could not be reopened within {options.reopen_s:g} s"
                    )
                cap = again
                continue
            _pace(cap, native, sampler.clock)
            at = sampler.clock.elapsed()
            if _over(options, at):  # read after the end: not kept
                continue
            sampler.offer(bgr, at)
            sampler.tick(at)
    finally:
        cap.release()
