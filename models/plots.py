"""PNG figures for the model card: training curves and a normalised confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: dict[str, list[float]], out: Path) -> Path:
    """Accuracy and loss per epoch, train vs validation, side by side."""
    plt = _pyplot()
    epochs = np.arange(1, len(history["accuracy"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    for ax, key in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, history[key], label=f"train {key} (augmented)")
        ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_confusion(cm_norm: np.ndarray, labels: list[str] | tuple[str, ...], out: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true class) as an annotated heat map."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.8), dpi=90)
    im = ax.imshow(cm_norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if cm_norm[i, j] > 0.5 else "black"
            ax.text(j, i, f"{cm_norm[i, j]:.2f}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_reliability(curves: dict[str, list[dict]], out: Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, one line per named
    set of `models.calibration.reliability_bins`, with the diagonal of perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=90)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, rows in curves.items():
        kept = [r for r in rows if r["n"]]
        ax.plot([r["confidence"] for r in kept], [r["accuracy"] for r in kept], marker="o", markersize=3, label=name)
    ax.set_xlabel("confidence (dominant emotion's share)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
