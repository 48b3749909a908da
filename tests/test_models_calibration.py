"""Calibration: the temperature fit, the expected calibration error, and the served
classifier applying the temperature its card records (and naming it in its version)."""

import shutil

import numpy as np
import pytest

from emotion_batch.classify.cnn import CnnClassifier, expected_model_version
from emotion_batch.runtime import DEFAULT_MODEL, apply_temperature, load_classifier_fn, served_flip_tta
from emotion_batch.sidecar import write_sidecar
from models.calibration import expected_calibration_error, fit_temperature, reliability_bins


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def calibrated_sample():
    """Logits and labels drawn from softmax(logits): calibrated at T = 1 by construction."""
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 2.0, size=(6000, 7))
    probs = softmax(logits)
    labels = np.array([rng.choice(7, p=p) for p in probs])
    return logits, labels


def test_fit_recovers_the_temperature_of_overconfident_probabilities(calibrated_sample):
    logits, labels = calibrated_sample
    overconfident = softmax(2.0 * logits)  # logits doubled: T = 2 undoes it
    temperature = fit_temperature(overconfident, labels)
    assert 1.8 < temperature < 2.2
    before = expected_calibration_error(overconfident, labels)
    after = expected_calibration_error(apply_temperature(overconfident, temperature), labels)
    assert after < before / 2
    assert after < 0.03


def test_fit_leaves_calibrated_probabilities_alone(calibrated_sample):
    logits, labels = calibrated_sample
    assert 0.9 < fit_temperature(softmax(logits), labels) < 1.1


def test_temperature_keeps_the_dominant_emotion_and_sums_to_one(calibrated_sample):
    probs = softmax(calibrated_sample[0][:500])
    for temperature in (0.5, 1.7):
        scaled = apply_temperature(probs, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-5)
        assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()
    sharper = apply_temperature(probs, 0.5).max(axis=1)
    assert (sharper >= probs.max(axis=1) - 1e-6).all()


def test_reliability_bins_count_every_face(calibrated_sample):
    logits, labels = calibrated_sample
    rows = reliability_bins(softmax(logits), labels, bins=10)
    assert len(rows) == 10 and sum(r["n"] for r in rows) == len(labels)
    assert all(r["low"] <= r["confidence"] <= r["high"] for r in rows if r["n"])


def test_served_classifier_applies_the_cards_temperature(tmp_path):
    model = tmp_path / "emotion_cnn.keras"
    for suffix in (".keras", ".tflite", ".json"):
        shutil.copyfile(DEFAULT_MODEL.with_suffix(suffix), model.with_suffix(suffix))
    faces = np.random.default_rng(3).integers(0, 256, size=(16, 48, 48, 1), dtype=np.uint8)
    plain = CnnClassifier(model)
    write_sidecar(model, {"serve_temperature": 1.5}, fresh=False)
    calibrated = CnnClassifier(model)
    assert "-t1.5-" in calibrated.model_version and "-t1.5-" not in plain.model_version
    assert expected_model_version(model) == calibrated.model_version
    uncalibrated = load_classifier_fn(model, flip_tta=served_flip_tta(model))(faces)
    np.testing.assert_allclose(calibrated.predict(faces), apply_temperature(uncalibrated, 1.5), atol=1e-5)
    np.testing.assert_allclose(plain.predict(faces), uncalibrated, atol=1e-6)
