"""The committed model (models/emotion_cnn.keras + .tflite + .json) against its own card."""

import numpy as np
import pytest

from emotion_batch.labels import EMOTIONS
from emotion_batch.runtime import DEFAULT_MODEL, load_classifier_fn
from emotion_batch.sidecar import read_sidecar, sha256_of
from tests.test_models_data import fer_dir

SAMPLE = 1000
SEED = 2024


@pytest.fixture(scope="module")
def sidecar():
    assert DEFAULT_MODEL.exists(), f"committed model missing: {DEFAULT_MODEL}"
    return read_sidecar(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def sample():
    """A fixed random sample of 1,000 FER2013 test images (seed 2024)."""
    from models import data

    test = data.load_split("test", fer_dir())
    idx = np.random.default_rng(SEED).choice(len(test), SAMPLE, replace=False)
    return test.x[idx], test.y[idx]


def test_sidecar_describes_the_file(sidecar):
    assert sidecar["labels"] == list(EMOTIONS)
    assert sidecar["input_shape"] == [48, 48, 1]
    assert sidecar["input_range"] == "uint8 0-255 grey"
    assert sidecar["sha256"] == sha256_of(DEFAULT_MODEL)
    tflite = DEFAULT_MODEL.with_suffix(".tflite")
    assert sidecar["tflite_sha256"] == sha256_of(tflite)
    assert 0.0 < sidecar["test_metrics"]["accuracy"] <= 1.0


def test_sidecar_records_no_machine_specific_path(sidecar):
    """Paths in the card are relative to the repository, not the training machine's."""

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    assert sidecar["training"]["config"]["data_dir"] == "fer2013"
    assert not [s for s in strings(sidecar) if s.startswith("/") or "(/" in s]


def test_accuracy_on_a_fixed_sample_is_within_3_points_of_the_card(sidecar, sample):
    x, y = sample
    probs = load_classifier_fn(DEFAULT_MODEL)(x)
    assert probs.shape == (SAMPLE, 7) and probs.dtype == np.float32
    accuracy = float((probs.argmax(axis=1) == y).mean())
    assert abs(accuracy - sidecar["test_metrics"]["accuracy"]) <= 0.03, accuracy


def test_runtimes_agree(sidecar, sample):
    """The served .tflite is the .keras model quantized to int8 (see the card): the same
    answer for nearly every face and probabilities close to the float32 model's."""
    x = sample[0][:512]
    via_tf = load_classifier_fn(DEFAULT_MODEL, "tf")(x)
    via_tflite = load_classifier_fn(DEFAULT_MODEL, "tflite")(x)
    np.testing.assert_allclose(via_tf.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(via_tflite.sum(axis=1), 1.0, atol=1e-2)
    if sidecar.get("tflite_quantization") == "int8":
        assert (via_tflite.argmax(axis=1) == via_tf.argmax(axis=1)).mean() >= 0.95
        assert float(np.abs(via_tflite - via_tf).mean()) < 0.02
    else:
        np.testing.assert_allclose(via_tflite, via_tf, atol=1e-4)


def test_runtime_validates_its_input():
    classify = load_classifier_fn(DEFAULT_MODEL)
    assert classify(np.zeros((0, 48, 48, 1), np.uint8)).shape == (0, 7)
    with pytest.raises(TypeError):
        classify(np.zeros((2, 48, 48, 1), np.float32))
    with pytest.raises(ValueError):
        classify(np.zeros((2, 48, 48), np.uint8))


def test_flip_tta_averages_the_face_and_its_mirror(sample):
    x = sample[0][:32]
    plain = load_classifier_fn(DEFAULT_MODEL, "tf")
    tta = load_classifier_fn(DEFAULT_MODEL, "tf", flip_tta=True)(x)
    expected = 0.5 * (plain(x) + plain(np.ascontiguousarray(x[:, :, ::-1, :])))
    np.testing.assert_allclose(tta, expected, atol=1e-6)


def test_ten_view_tta_averages_shifted_and_mirrored_views(sample):
    from emotion_batch.runtime import shifted, with_ten_view_tta

    x = sample[0][:8]
    moved = shifted(x, 3, -2)
    assert moved[0, 10, 13, 0] == x[0, 12, 10, 0]  # content moved right 3, up 2
    assert (moved[:, :, :3, :] == moved[:, :, 3:4, :]).all()  # uncovered edge repeats
    plain = load_classifier_fn(DEFAULT_MODEL, "tf")
    views = [x, shifted(x, 3, 0), shifted(x, -3, 0), shifted(x, 0, 3), shifted(x, 0, -3)]
    views += [np.ascontiguousarray(v[:, :, ::-1, :]) for v in views]
    expected = np.mean([plain(v) for v in views], axis=0)
    np.testing.assert_allclose(with_ten_view_tta(plain)(x), expected, atol=1e-6)
