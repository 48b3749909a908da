"""A real HTTP MJPEG stream on loopback, served in process (by tests/test_live.py and
bench.live) from real photos (multipart/x-mixed-replace, as IP cameras serve it), that
can be stopped and restarted on the same port to make a source drop and come back."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

BOUNDARY = "frame"


def jpeg_frames(photos: list[Path], size: tuple[int, int] = (640, 360)) -> list[bytes]:
    """The photos letterboxed to one size (a camera's frames never change size), as JPEG."""
    frames = []
    for photo in photos:
        image = cv2.imread(str(photo))
        if image is None:
            raise ValueError(f"{photo}: not an image OpenCV reads")
        height, width = image.shape[:2]
        scale = min(size[0] / width, size[1] / height)
        resized = cv2.resize(image, (int(width * scale), int(height * scale)))
        canvas = cv2.copyMakeBorder(
            resized,
            0,
            size[1] - resized.shape[0],
            0,
            size[0] - resized.shape[1],
            cv2.BORDER_CONSTANT,
        )
        frames.append(cv2.imencode(".jpg", canvas)[1].tobytes())
    return frames


class MjpegServer:
    """Serves `frames` in a loop at `rate` frames per second on 127.0.0.1:`port`."""

    def __init__(self, frames: list[bytes], rate: float = 10.0, port: int = 0) -> None:
        self.frames, self.rate, self.port = frames, rate, port
        self._server: ThreadingHTTPServer | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        self._stopped.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open stream (the camera goes away)."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                i = 0
                try:
                    while not owner._stopped.is_set():
                        frame = owner.frames[i % len(owner.frames)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n".encode()
                        )
                        self.wfile.write(frame + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(1 / owner.rate)
                except OSError:
                    return
                self.close_connection = True

        return Handler
