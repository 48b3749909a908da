"""Classification metrics in numpy (no scikit-learn): confusion matrix, per-class report,
and the Markdown tables the training and bench scripts print them in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: the header, its rule, one line a row (cells already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts: rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall on the diagonal); empty rows stay 0."""
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros(cm.shape, dtype=np.float64), where=totals > 0)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_report(cm: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict:
    """Precision, recall, F1, support per class, plus accuracy, macro and weighted averages."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = _safe_div(tp, cm.sum(axis=0).astype(np.float64))
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    report: dict = {
        name: {"precision": p, "recall": r, "f1": f, "support": int(s)}
        for name, p, r, f, s in zip(labels, precision, recall, f1, support)
    }
    weights = support / support.sum()
    for avg, w in (("macro avg", np.full(len(labels), 1 / len(labels))), ("weighted avg", weights)):
        report[avg] = {
            "precision": float(precision @ w),
            "recall": float(recall @ w),
            "f1": float(f1 @ w),
            "support": int(support.sum()),
        }
    report["accuracy"] = float(tp.sum() / support.sum())
    return {
        k: ({m: float(v) if m != "support" else v for m, v in d.items()} if isinstance(d, dict) else d)
        for k, d in report.items()
    }


def report_markdown(report: dict) -> str:
    """The report as a Markdown table (like sklearn's text report)."""
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, row in report.items():
        if isinstance(row, dict):
            lines.append(
                f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
            )
    lines.append(f"| **accuracy** | | | **{report['accuracy']:.4f}** | {report['macro avg']['support']} |")
    return "\n".join(lines)


def cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean())
