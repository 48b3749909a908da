"""Compare candidate architectures on the same short budget: `python -m models.candidates`.

Each candidate trains with the project's recipe (models.trainer: bf16 where the CPU has it,
AdamW, label smoothing, weight averaging, augmentation) on the same stratified subset for
the same number of epochs; printed: parameters, multiply-accumulates per face, training
images per second on this machine, best validation accuracy. The table goes in the model
card (models/README.md) and models/eval/candidates.json.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from models import data, trainer
from models.config import TrainConfig
from models.metrics import markdown_table

CANDIDATES = {
    "small (committed v1 shape)": ((16, 32, 64, 128), (1, 1, 1)),
    "resnet 32-256 x2": ((32, 64, 128, 256), (2, 2, 2)),
    "resnet 48-384 x2": ((48, 96, 192, 384), (2, 2, 2)),
}


def run_candidate(
    name: str, widths: tuple[int, ...], blocks: tuple[int, ...], subset: int, epochs: int, data_dir: Path
) -> dict:
    """Train one candidate in a scratch folder; return its row of the table."""
    cfg = TrainConfig(
        data_dir=str(data_dir), widths=widths, blocks=blocks, subset=subset, epochs=epochs, warmup_epochs=1
    )
    with tempfile.TemporaryDirectory(prefix="candidate-") as tmp:
        summary = trainer.run_training(cfg, Path(tmp), verbose=0)
    return {
        "name": name,
        "widths": list(widths),
        "blocks": list(blocks),
        "params": summary["params"],
        "macs_per_face": summary["macs_per_face"],
        "train_images_per_s": round(summary["train_images"] * summary["epochs_run"] / summary["training_seconds"], 1),
        "best_val_accuracy": round(summary["best_val_accuracy"], 4),
        "epochs": epochs,
        "subset": subset,
        "config": asdict(cfg),
    }


@click.command()
@click.option("--subset", default=6000, show_default=True)
@click.option("--epochs", default=5, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(__file__).resolve().parent / "eval" / "candidates.json",
    show_default=True,
)
def main(subset: int, epochs: int, data_dir: Path | None, out: Path) -> None:
    """Train each candidate on the same budget and print the comparison table."""
    hardware = trainer.setup_device("auto")
    rows = [
        run_candidate(name, w, b, subset, epochs, data_dir or data.default_data_dir())
        for name, (w, b) in CANDIDATES.items()
    ]
    out.write_text(json.dumps({"hardware": hardware, "candidates": rows}, indent=1) + "\n")
    click.echo(f"{hardware}; {subset} training images, {epochs} epochs each")
    header = ["candidate", "params", "MMACs/face", "train images/s", "best val accuracy"]
    cells = [
        [
            r["name"],
            f"{r['params']:,}",
            f"{r['macs_per_face'] / 1e6:.1f}",
            f"{r['train_images_per_s']:.0f}",
            f"{r['best_val_accuracy']:.1%}",
        ]
        for r in rows
    ]
    click.echo(markdown_table(header, cells))


if __name__ == "__main__":
    main()
