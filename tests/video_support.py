"""What both video test modules use: clips written with cv2.VideoWriter from the face
photos (every container, and broken ones), and a video's stored frames with their faces."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bench.videoclips import claim_longer, cut, write_clip
from db.session import make_session_factory
from db.video_schema import Frame

NATIVE_FPS = 25.0


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> dict[str, Path]:
    """Good and broken clips, made once for the module."""
    out = tmp_path_factory.mktemp("clips")
    photos = sorted(photos_dir.glob("img*.jpg"))
    made = {
        "mp4": write_clip(out / "walk.mp4", photos[:8], 30),
        "avi": write_clip(out / "party.avi", photos[8:14], 20),
        "mkv": write_clip(out / "talk.mkv", photos[14:18], 20),
        "webm": write_clip(out / "short.webm", photos[18:20], 4),
    }
    made["half_mp4"] = cut(made["mp4"], out / "half.mp4", 0.5)
    made["half_avi"] = cut(made["avi"], out / "half.avi", 0.5)
    made["header_only"] = cut(made["mkv"], out / "header-only.mkv", 1024)
    made["empty"] = out / "empty.mp4"
    made["empty"].write_bytes(b"")
    made["liar"] = claim_longer(made["avi"], out / "claims-hours.avi", int(NATIVE_FPS * 3 * 3600))
    made["audio"] = _audio_only(out / "voice.mp4")
    return made


def _audio_only(path: Path) -> Path | None:
    """An MP4 holding one AAC sound track and no picture (PyAV writes it)."""
    try:
        import av
    except ImportError:
        return None
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# --- in-process: probing, sampling, recognition ---------------------------------------


def stored_frames(url: str, video_id: int) -> list[Frame]:
    with make_session_factory(url)() as session:
        frames = session.scalars(select(Frame).where(Frame.video_id == video_id).order_by(Frame.frame_no)).all()
        for frame in frames:
            _ = list(frame.faces)
        return list(frames)
