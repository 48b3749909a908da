"""models.metrics against hand-computed values."""

import numpy as np

from models.metrics import classification_report, confusion_matrix, cross_entropy, normalise_rows


def test_report_on_a_known_confusion_matrix():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    rep = classification_report(cm, ("a", "b", "c"))
    assert rep["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert abs(rep["b"]["precision"] - 0.5) < 1e-12 and abs(rep["b"]["f1"] - 0.5) < 1e-12
    assert abs(rep["accuracy"] - 4 / 6) < 1e-12
    assert abs(rep["macro avg"]["recall"] - (2 / 3 + 1 / 2 + 1) / 3) < 1e-12
    assert abs(rep["weighted avg"]["recall"] - rep["accuracy"]) < 1e-12
    assert np.allclose(normalise_rows(cm).sum(axis=1), 1.0)


def test_cross_entropy():
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert abs(cross_entropy(probs, np.array([0, 1])) - (-np.log(0.5) - np.log(0.75)) / 2) < 1e-9
