"""The JSON sidecar (model card) next to a model file (`emotion_cnn.keras` -> `.json`):
serving reads it (runtime, flip averaging, temperature), training writes it."""

from __future__ import annotations

import json
from pathlib import Path

from emotion_batch.labels import EMOTIONS

SIDECAR_FORMAT = 1
MODEL_VERSION = "2.0.0"  # bump when a retrained model file replaces the committed one


def sidecar_path(model_path: Path) -> Path:
    """`x.keras` -> `x.json`."""
    return Path(model_path).with_suffix(".json")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file (the one helper, `emotion_batch.hashing.sha256_file`)."""
    from emotion_batch.hashing import sha256_file

    return sha256_file(path)


def read_sidecar(model_path: Path) -> dict:
    """The sidecar of model_path ({} when there is none)."""
    path = sidecar_path(model_path)
    return json.loads(path.read_text()) if path.exists() else {}


def write_sidecar(model_path: Path, fields: dict, fresh: bool = True) -> dict:
    """Write (fresh) or update the sidecar; always refreshes the model's sha256 and size."""
    model_path = Path(model_path)
    base = {} if fresh else read_sidecar(model_path)
    sidecar = {
        "model": model_path.name,
        "version": MODEL_VERSION,
        "sidecar_format": SIDECAR_FORMAT,
        "labels": list(EMOTIONS),
        "input_shape": [48, 48, 1],
        "input_range": "uint8 0-255 grey",
        "output": "float32 softmax probabilities, labels order",
        **base,
        **fields,
        "sha256": sha256_of(model_path),
        "bytes": model_path.stat().st_size,
    }
    sidecar_path(model_path).write_text(json.dumps(sidecar, indent=1) + "\n")
    return sidecar
