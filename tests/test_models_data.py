"""models.data on the real FER2013 folders in ../shared (counts from data/README.md)."""

import os

import numpy as np
import pytest

from emotion_batch.labels import EMOTIONS
from models import data

README_COUNTS = {
    "train": {
        "angry": 3995,
        "disgust": 436,
        "fear": 4097,
        "happy": 7215,
        "sad": 4830,
        "surprise": 3171,
        "neutral": 4965,
    },
    "test": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607},
}


def fer_dir():
    """The FER2013 folder; skip if absent, but fail under CI=true."""
    folder = data.default_data_dir()
    if not (folder / "train").is_dir():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"FER2013 not found at {folder} (CI=true: the data must be present)")
        pytest.skip(f"FER2013 not found at {folder}; set FER2013_DIR to run these tests")
    return folder


@pytest.mark.parametrize("split", ["train", "test"])
def test_counts_per_class_match_readme(split):
    loaded = data.load_split(split, fer_dir())
    assert loaded.counts() == README_COUNTS[split]
    assert loaded.x.shape == (sum(README_COUNTS[split].values()), 48, 48, 1)
    assert loaded.x.dtype == np.uint8 and loaded.classes == EMOTIONS


def test_cache_gives_the_same_arrays_as_decoding(tmp_path, monkeypatch):
    folder = fer_dir()
    cached = data.load_split("test", folder)
    monkeypatch.setenv("EMOTION_BATCH_CACHE", str(tmp_path))
    fresh = data.load_split("test", folder, use_cache=False)
    assert np.array_equal(cached.x, fresh.x) and np.array_equal(cached.y, fresh.y)


def test_stratified_validation_split_is_disjoint_and_fixed():
    train = data.load_split("train", fer_dir())
    a_train, a_val = data.stratified_split(train, 0.1, seed=7)
    _, b_val = data.stratified_split(train, 0.1, seed=7)
    assert len(a_train) + len(a_val) == len(train)
    assert np.array_equal(a_val.x, b_val.x)
    for name, n in README_COUNTS["train"].items():
        assert a_val.counts()[name] == round(n * 0.1)


def test_classes_subset_renumbers_labels():
    test = data.load_split("test", fer_dir())
    sub = data.select_classes(test, ("happy", "sad", "neutral"))
    assert sub.classes == ("happy", "sad", "neutral")
    assert sub.counts() == {"happy": 895, "sad": 653, "neutral": 607}
    with pytest.raises(ValueError):
        data.select_classes(test, ("happy", "bored"))


def test_class_weights_favour_rare_classes():
    y = np.array([0] * 100 + [1] * 10 + [2] * 50)
    w = data.class_weights(y, 3, power=0.5)
    assert w[1] > w[2] > w[0]
    counts = np.bincount(y)
    assert abs(sum(w[i] * counts[i] for i in range(3)) - len(y)) < 1e-6


def test_training_pipeline_augments_and_weights():
    test = data.stratified_subset(data.load_split("test", fer_dir()), 200, seed=0)
    weights = data.class_weights(test.y, 7)
    x, y, w = next(iter(data.make_dataset(test, 32, training=True, seed=0, weights=weights)))
    assert x.shape == (32, 48, 48, 1) and x.dtype.name == "float32"
    assert float(np.min(x)) >= 0.0 and float(np.max(x)) <= 255.0
    assert np.allclose(w.numpy(), [weights[int(i)] for i in y.numpy()])
    x_eval, _ = next(iter(data.make_dataset(test, 32, training=False)))
    assert np.array_equal(x_eval.numpy(), test.x[:32].astype(np.float32))


def test_photo_degradations_keep_shape_and_range_and_change_the_faces():
    import tensorflow as tf

    from models import data

    faces = data.load_split("test", fer_dir()).x[:64].astype(np.float32)
    tf.random.set_seed(3)
    out = data.degrade_photos(tf.constant(faces)).numpy()
    assert out.shape == faces.shape and out.min() >= 0.0 and out.max() <= 255.0
    changed = np.abs(out - faces).mean(axis=(1, 2, 3))
    assert (changed > 1.0).mean() > 0.9  # gamma and contrast touch nearly every face
    # degraded, not destroyed: each face still correlates with its original
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(out, faces)]
    assert np.median(corr) > 0.8
    # the photo recipe runs inside the training pipeline
    batch = next(
        iter(
            data.make_dataset(
                data.Split(faces.astype(np.uint8), np.zeros(64, int), data.EMOTIONS), 32, True, augment="photo"
            )
        )
    )
    assert batch[0].shape == (32, 48, 48, 1)
