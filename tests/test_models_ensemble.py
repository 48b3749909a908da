"""models.ensemble: several nets served as one model file, with a member reading the mirror.

Tiny untrained nets keep it fast: what is tested is the graph, the export, the card, the
choice against the served model and the version the worker records, not accuracy.
"""

import numpy as np
import pytest
from click.testing import CliRunner

from emotion_batch.classify.cnn import CnnClassifier, expected_model_version
from emotion_batch.labels import EMOTIONS
from emotion_batch.runtime import load_classifier_fn, served_flip_tta
from emotion_batch.sidecar import read_sidecar, sha256_of, write_sidecar
from models import ensemble
from models.architecture import build_model
from tests.test_models_data import fer_dir

TINY = (8, 16, 32, 64)


def tiny_net(path, seed, split_seed=1234):
    """An untrained tiny net saved with a card like a trained one's."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(7, widths=TINY, blocks=(1, 1, 1))
    model.save(path)
    config = {"classes": list(EMOTIONS), "seed": split_seed, "val_fraction": 0.1, "subset": 0, "data_dir": "fer2013"}
    write_sidecar(path, {"training": {"config": config, "training_seconds": 10.0, "epochs_run": 1}})
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("members")
    return [tiny_net(folder / f"net{i}.keras", seed) for i, seed in enumerate((1, 2))]


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (24, 48, 48, 1), dtype=np.uint8)


def test_the_ensemble_averages_its_members_one_reading_the_mirror(nets, faces, tmp_path):
    from models.architecture import build_ensemble

    members = ensemble.load_members(nets, "alternate")
    assert [m.mirrored for m in members] == [False, True]
    assert [m.model.name for m in members] == ["member_0", "member_1"]
    path = tmp_path / "ens.keras"
    build_ensemble([m.model for m in members], [m.mirrored for m in members]).save(path)
    a, b = (load_classifier_fn(p, "tf") for p in nets)
    expected = 0.5 * (a(faces) + b(np.ascontiguousarray(faces[:, :, ::-1, :])))
    got = load_classifier_fn(path, "tf")(faces)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # an ensemble given as a member is expanded to its members, in order
    again = ensemble.load_members([path], "none")
    assert [m.mirrored for m in again] == [False, False] and len(again) == 2


def test_cli_serves_the_ensemble_as_one_int8_file_without_runtime_flip(nets, faces, tmp_path):
    out = tmp_path / "served" / "emotion_cnn.keras"
    args = ["--member", str(nets[0]), "--member", str(nets[1]), "--out", str(out), "--data-dir", str(fer_dir())]
    result = CliRunner().invoke(ensemble.main, [*args, "--force"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = read_sidecar(out)
    assert card["model"] == "emotion_cnn.keras" and card["tflite"] == "emotion_cnn.tflite"
    assert card["tflite_sha256"] == sha256_of(out.with_suffix(".tflite")) and card["sha256"] == sha256_of(out)
    assert card["tflite_quantization"] == "int8" and card["serve_flip_tta"] is False
    assert [m["mirrored"] for m in card["ensemble"]["members"]] == [False, True]
    validation = card["ensemble"]["validation"]
    assert validation["faces"] == card["training"]["val_images"] > 2000
    assert 0.0 < card["training"]["best_val_accuracy"] == validation["ensemble_as_served"] <= 1.0
    assert card["training"]["config"]["data_dir"] == "fer2013" and card["training"]["training_seconds"] == 20.0
    # the worker: no run-time flip (the card says so), a version naming the int8 file
    assert not served_flip_tta(out) and served_flip_tta(out, True)
    classifier = CnnClassifier(out)
    assert classifier.model_version == f"cnn-tflite-{sha256_of(out.with_suffix('.tflite'))[:16]}"
    assert expected_model_version(out) == classifier.model_version
    assert classifier.predict(faces).shape == (24, 7)
    # the int8 file is the float32 graph quantized
    via_tf = load_classifier_fn(out, "tf")(faces)
    assert float(np.abs(classifier.predict(faces) - via_tf).mean()) < 0.02

    # an ensemble that is not better than the served model by --min-gain leaves it alone
    before = sha256_of(out)
    kept = CliRunner().invoke(ensemble.main, [*args, "--min-gain", "1.0"], catch_exceptions=False)
    assert kept.exit_code == 0 and "kept" in kept.output and sha256_of(out) == before


def test_members_trained_on_different_splits_are_refused(nets, tmp_path):
    other = tiny_net(tmp_path / "other.keras", 3, split_seed=99)
    result = CliRunner().invoke(ensemble.main, ["--member", str(nets[0]), "--member", str(other)])
    assert result.exit_code != 0 and "one full split" in result.output
