"""The JSON messages that travel on Redis, as frozen dataclasses, and the rule for how
many images one batch holds.

A batch names images by database id and path, never by pixels. Publishing them is
`producer.publish`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any, TypeVar

from emotion_batch.errors import ConfigurationError, MessageError

ANALYZE_TASK = "emotion_batch.analyze_batch"
# The one batch-size rule: BATCH_SIZE, `--batch-size`, the API's batch_size and the
# messages a worker accepts all obey it.
BATCH_SIZE_MIN, BATCH_SIZE_MAX = 1, 1024
T = TypeVar("T")


def valid_batch_size(batch_size: int) -> bool:
    """Whether `batch_size` images may make one batch."""
    return BATCH_SIZE_MIN <= batch_size <= BATCH_SIZE_MAX


def check_batch_size(batch_size: int) -> int:
    """`batch_size` when valid, else one clear `ConfigurationError`."""
    if not valid_batch_size(batch_size):
        raise ConfigurationError(f"batch size must be between {BATCH_SIZE_MIN} and {BATCH_SIZE_MAX}, not {batch_size}")
    return batch_size


def chunked(items: Iterable[T], size: int, weight: Callable[[T], int] | None = None) -> Iterator[list[T]]:
    """`items` in order, in lists of `size` (the last may be shorter); with `weight`, each
    list ends once its items' weights add up to `size` or more."""
    if weight is None:
        rest = iter(items)
        while chunk := list(islice(rest, size)):
            yield chunk
        return
    chunk, units = [], 0
    for item in items:
        chunk.append(item)
        units += weight(item)
        if units >= size:
            yield chunk
            chunk, units = [], 0
    if chunk:
        yield chunk


@dataclass(frozen=True)
class ImageRef:
    """One image to analyse: its row id and the path the worker reads."""

    image_id: int
    path: str


@dataclass(frozen=True)
class BatchMessage:
    """One unit of work: a job's images, analysed together with one backend."""

    job_id: int
    batch_no: int  # the id of its first image (producer.publish.Enqueuer)
    backend: str
    images: tuple[ImageRef, ...]
    force: bool = False
    resend: int = 0  # 0: first send; else which `producer resume` sent it (its start, ms)

    @property
    def task_id(self) -> str:
        """Celery task id, findable in Flower and Redis: `job{J}-batch{first image id}`,
        plus `-resend{N}` for a batch sent again by resume. A resend is a new delivery with
        an id of its own, so the worker's leases (owned by task id) tell it apart from a
        copy of the batch still in flight; Redis redelivering a message keeps its id."""
        base = f"job{self.job_id}-batch{self.batch_no}"
        return f"{base}-resend{self.resend}" if self.resend else base

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-serialisable dict (Celery's json serializer). Written out, not
        `asdict`: its recursive deep copy was a third of a publish (31,250 per 1M files)."""
        return {
            "job_id": self.job_id,
            "batch_no": self.batch_no,
            "backend": self.backend,
            "images": [{"image_id": ref.image_id, "path": ref.path} for ref in self.images],
            "force": self.force,
            "resend": self.resend,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchMessage:
        """Rebuild a message, validating its shape; `MessageError` when it is malformed
        or names more images than a batch may hold."""
        try:
            raw = data["images"]
            if not isinstance(raw, list):
                raise TypeError("images is not a list")
            if len(raw) > BATCH_SIZE_MAX:
                raise MessageError(
                    f"job {data.get('job_id')} batch {data.get('batch_no')}: {len(raw)} images, "
                    f"more than the {BATCH_SIZE_MAX} a batch may hold; refused"
                )
            images = tuple(ImageRef(int(i["image_id"]), str(i["path"])) for i in raw)
            return cls(
                job_id=int(data["job_id"]),
                batch_no=int(data["batch_no"]),
                backend=str(data["backend"]),
                images=images,
                force=bool(data.get("force", False)),
                resend=int(data.get("resend", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"malformed batch message ({type(exc).__name__}: {exc}); refused") from exc


ANALYZE_SEGMENT_TASK = "emotion_batch.analyze_segment"


@dataclass(frozen=True)
class SegmentMessage:
    """One time segment of a video: its frames are sampled, analysed and stored together."""

    job_id: int
    video_id: int
    segment_no: int
    backend: str
    batch_size: int
    force: bool = False

    @property
    def task_id(self) -> str:
        """Deterministic Celery task id: `job<J>-video<V>-seg<N>`."""
        return f"job{self.job_id}-video{self.video_id}-seg{self.segment_no}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentMessage:
        """Rebuild a message; `MessageError` when it is malformed."""
        try:
            message = cls(
                job_id=int(data["job_id"]),
                video_id=int(data["video_id"]),
                segment_no=int(data["segment_no"]),
                backend=str(data["backend"]),
                batch_size=int(data["batch_size"]),
                force=bool(data.get("force", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"malformed segment message: {type(exc).__name__}: {exc}") from exc
        if not valid_batch_size(message.batch_size):
            raise MessageError(
                f"segment message: batch size {message.batch_size} outside {BATCH_SIZE_MIN}..{BATCH_SIZE_MAX}"
            )
        return message
