"""Calibration of served probabilities: expected calibration error, reliability bins and a
temperature fitted on the validation split (Guo et al. 2017, "On Calibration of Modern
Neural Networks").

The temperature acts on log-probabilities, `p_i^(1/T) / sum_j p_j^(1/T)`: for one softmax
that is exactly `softmax(z / T)`, and it applies unchanged to probabilities already
averaged over views or ensemble members, which have no single logit vector. It never
changes which emotion is dominant, only how sure the percentages say it is.
"""

from __future__ import annotations

import numpy as np

from emotion_batch.runtime import apply_temperature

ECE_BINS = 15


def reliability_bins(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin (equal width over [0, 1]): faces, mean confidence, accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": n,
                "confidence": float(confidence[mask].mean()) if n else 0.0,
                "accuracy": float(correct[mask].mean()) if n else 0.0,
            }
        )
    return rows


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins of |accuracy - confidence| weighted by the bin's share of faces."""
    rows = reliability_bins(probs, y, bins)
    total = sum(r["n"] for r in rows)
    return float(sum(r["n"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / max(total, 1))


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray, low: float = 0.25, high: float = 4.0) -> float:
    """The temperature in [low, high] minimising the negative log-likelihood of `y` (a
    golden-section search over log T: the likelihood is unimodal in T)."""
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def loss(log_t: float) -> float:
        return nll(apply_temperature(probs, float(np.exp(log_t))), y)

    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(60):
        if loss(c) < loss(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return round(float(np.exp((a + b) / 2.0)), 4)
