"""One exception base with clear subclasses. Each image error carries the short reason
recorded against the image in the database. Messages name settings and files, never a
command: the CLI and the web service each add what their users run."""

from __future__ import annotations


class EmotionBatchError(Exception):
    """Base of every error raised by emotion-batch."""


class ConfigurationError(EmotionBatchError):
    """A setting points at something unusable."""


class BrokerUnavailableError(EmotionBatchError):
    """Redis cannot be reached, or refuses our credentials; `startable`: none answered, so
    starting one would help (not so when one refused us)."""

    def __init__(self, message: str, startable: bool = False) -> None:
        super().__init__(message)
        self.startable = startable


class DatabaseUnavailableError(EmotionBatchError):
    """The database cannot be opened or written (missing folder, server down, read-only)."""


class MessageError(EmotionBatchError):
    """A queued message is malformed, too large, or names images it may not touch."""


class WeightsMissingError(ConfigurationError):
    """A model weights file is absent and cannot be downloaded; `short` says so without
    the instructions (for a fallback's one-line warning); `downloadable`: a machine with
    network could fetch it."""

    def __init__(self, message: str, short: str | None = None, downloadable: bool = False) -> None:
        super().__init__(message)
        self.short = short or message
        self.downloadable = downloadable


class DatabaseNotReadyError(ConfigurationError):
    """The database is absent or its schema is not at the newest revision (read-only
    commands never create or migrate it)."""


class JobNotFoundError(EmotionBatchError, LookupError):
    """No job with this id (or no job at all) in the database."""

    def __init__(self, job_id: int | None = None) -> None:
        super().__init__(f"no job {job_id} in the database" if job_id is not None else "no job in the database yet")
        self.job_id = job_id


class PathNotFoundError(EmotionBatchError, FileNotFoundError):
    """A path given to submit does not exist (nothing is scanned, queued or recorded)."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"not found: {', '.join(paths)}")
        self.paths = paths


class LiveSourceError(EmotionBatchError):
    """A live source (camera, stream URL) cannot be opened: no job is recorded."""


class SharedFolderChangedError(EmotionBatchError):
    """A folder found unchanged since an earlier job had fewer of that job's rows when it
    was shared (the earlier job deleted meanwhile): nothing of the chunk was committed,
    and resuming the job registers the folder file by file."""

    def __init__(self, job_id: int, shared: int, expected: int) -> None:
        super().__init__(
            f"job {job_id}: {shared} earlier rows found for {expected} files of folders found unchanged "
            f"(an earlier job changed meanwhile); resume job {job_id} to register them file by file"
        )
        self.job_id, self.shared, self.expected = job_id, shared, expected


class ImageError(EmotionBatchError):
    """An image cannot be analysed; `reason` is what the database records."""

    reason = "image error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class FileMissingError(ImageError):
    reason = "file missing"


class UnreadableFileError(ImageError):
    reason = "unreadable file"


class EmptyFileError(ImageError):
    reason = "empty file"


class NotAnImageError(ImageError):
    reason = "not an image"


class CorruptImageError(ImageError):
    reason = "corrupt or truncated image"


class ImageTooLargeError(ImageError):
    reason = "image too large"


class PathNotAllowedError(ImageError):
    reason = "path outside allowed roots"


class VideoError(ImageError):
    """A video cannot be analysed (recorded against the video, like an image's reason)."""

    reason = "video error"


class CorruptVideoError(VideoError):
    reason = "corrupt or truncated video"


class AudioOnlyError(VideoError):
    reason = "audio only: no video stream"


class VideoTooLongError(VideoError):
    reason = "video too long"


class RequestRefusedError(EmotionBatchError):
    """A request the web service refuses; `status` is the HTTP status it answers with."""

    status = 400


class ForbiddenPathError(RequestRefusedError):
    """A server path outside the allowed roots."""

    status = 403


class NotLiveError(RequestRefusedError):
    """A stop asked of a job that is not sampling a live source (any more)."""

    status = 409


class UploadTooLargeError(RequestRefusedError):
    """An upload (or a zip's total uncompressed size) over its limit."""

    status = 413


class UploadStorageFullError(RequestRefusedError):
    """The upload folder has no room left (the server's state, not the upload's fault)."""

    status = 503


class UnsupportedUploadError(RequestRefusedError):
    """An uploaded file that is not an image (nor one zip of images)."""

    status = 415


class UnsafeArchiveError(RequestRefusedError):
    """A zip entry with `..`, an absolute path or a link, or an unreadable zip."""

    status = 400
