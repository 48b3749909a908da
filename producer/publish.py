"""Publishing a job's images as batches on the queue, in a thread of its own while the
producer registers the next chunk (messages: `emotion_batch.messages`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from queue import Queue

from celery import Celery

from db.schema import Job
from emotion_batch.broker import send_batch
from emotion_batch.messages import BatchMessage, ImageRef, chunked

OUTBOX_CHUNKS = 4  # chunks of batches handed to the publishing thread, at most, not yet sent


class Enqueuer:
    """Sends a job's pending images as full batches as they come, the rest on `flush`.

    With `background`, a thread of its own publishes them (in order, on one broker
    connection) while the caller registers the next chunk: publishing is mostly waiting
    for Redis and Celery's message building, which then overlaps the database's work.
    `flush` waits until everything handed over is on the queue and raises a publishing
    error; `close` (always, also after an error or Ctrl-C) sends what was handed over
    and ends the thread."""

    def __init__(
        self,
        client: Celery,
        job: Job,
        queue: str,
        batch_size: int,
        on_batch: Callable[[int], None] | None = None,
        resend: int = 0,
        background: bool = False,
    ) -> None:
        self.client, self.job, self.queue, self.batch_size = client, job, queue, batch_size
        self.on_batch, self.resend = on_batch, resend
        self.buffer: list[ImageRef] = []
        self.batches = self.queued = 0
        self._outbox: Queue[list[list[ImageRef]] | None] = Queue(maxsize=OUTBOX_CHUNKS)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._publish, name="enqueue", daemon=True)
            self._thread.start()

    def add(self, refs: Iterable[ImageRef]) -> None:
        self.buffer.extend(refs)
        if len(self.buffer) < self.batch_size:
            return
        full = len(self.buffer) - len(self.buffer) % self.batch_size
        batches = list(chunked(self.buffer[:full], self.batch_size))
        del self.buffer[:full]
        self._dispatch(batches)

    def flush(self) -> None:
        if self.buffer:
            self._dispatch([self.buffer])
            self.buffer = []
        if self._thread is not None:
            self._outbox.join()
        self._raise()

    def close(self) -> None:
        """End the publishing thread once it has sent what it was given."""
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _dispatch(self, batches: list[list[ImageRef]]) -> None:
        self._raise()
        if self._thread is None:
            with self.client.producer_or_acquire() as producer:  # one connection for the chunk's batches
                for refs in batches:
                    self._send(refs, producer)
            return
        self._outbox.put(batches)

    def _publish(self) -> None:
        ended = False
        try:
            with self.client.producer_or_acquire() as producer:
                ended = self._drain(producer)
        except BaseException as exc:  # noqa: BLE001 (raised in the caller's thread)
            self._error = self._error or exc
            if not ended:
                self._drain(None)  # take what still comes (sending nothing) so flush and close return

    def _drain(self, producer: object) -> bool:
        """Publish what comes until `close`'s end mark; True once it came."""
        while True:
            batches = self._outbox.get()
            try:
                if batches is None:
                    return True
                if self._error is None and producer is not None:
                    for refs in batches:
                        self._send(refs, producer)
            except BaseException as exc:  # noqa: BLE001 (raised in the caller's thread)
                self._error = exc
            finally:
                self._outbox.task_done()

    def _send(self, refs: list[ImageRef], producer: object = None) -> None:
        # A batch is numbered by its first image's id: deterministic, and never shared by
        # two batches of one send (a resend adds its own tag, see BatchMessage.task_id).
        message = BatchMessage(
            self.job.id, refs[0].image_id, self.job.backend, tuple(refs), self.job.force, self.resend
        )
        send_batch(self.client, message, self.queue, producer)
        self.batches += 1
        self.queued += len(refs)
        if self.on_batch:
            self.on_batch(len(refs))
