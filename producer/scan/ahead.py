"""Run a producer of items in a thread of its own, a bounded number of items ahead of
the consumer (the submit walks and hashes while the previous chunk is registered: the
database and the hashing work outside the interpreter lock, so the two overlap)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import TypeVar

T = TypeVar("T")
_POLL_S = 0.1


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def ahead(items: Iterator[T], depth: int = 2, name: str = "ahead") -> Iterator[T]:
    """Yield `items` in order, produced by a thread that keeps at most `depth` of them
    ready. An error in the producer is raised here; when the consumer stops early (an
    error, Ctrl-C, `close()`), the producer stops at its next item and `items` is closed
    (its `finally` and `with` blocks run) before this returns."""
    queue: Queue[T | _End] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=_POLL_S)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            else:
                put(_End())
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
            put(_End(exc))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = queue.get(timeout=_POLL_S)
            except Empty:
                if not thread.is_alive() and queue.empty():
                    raise RuntimeError(f"{name}: the producer thread ended without a result") from None
                continue
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()
