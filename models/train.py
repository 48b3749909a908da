"""Train the emotion CNN on FER2013: `python -m models.train --help`.

One long schedule that several invocations complete: each stops at an epoch boundary
within its `--max-minutes` and `--resume` continues where the last one stopped, from the
run folder or, on a fresh clone, from the resume point committed next to the model. A
named recipe (`--recipe`, models.config) sets every option's default: v2's ResNet (AdamW,
warm-up + cosine, label smoothing) or the VGG on 40x40 views (SGD, plateau). Mixed
precision (bf16 on CPUs that have it, float16 on GPUs), an exponential moving average of
the weights (validation, the best checkpoint and the export use the average), no class
weights unless asked; best checkpoint on validation accuracy, fixed seeds. The run itself
is models.trainer, its callbacks models.callbacks, what it leaves behind (exports,
members, resume points) models.export.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import keras

from emotion_batch.labels import EMOTIONS
from emotion_batch.runtime import DEFAULT_MODEL
from emotion_batch.sidecar import read_sidecar
from models import data
from models.config import TrainConfig
from models.export import (
    export,
    export_member,
    resume_point_paths,
    write_resume_point,
)
from models.trainer import run_training, setup_device

DEFAULT_RUN_DIR = data.cache_dir() / "runs" / "emotion_cnn_resnet"


@click.command()
@click.option(
    "--recipe",
    type=click.Choice(["v2", "vgg"]),
    default="v2",
    show_default=True,
    help="Defaults of every training option below: v2's ResNet or the VGG on 40x40 crops (SGD, plateau).",
)
@click.option(
    "--teacher",
    "teachers",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Distil: a trained .keras net or an exported --member; the student learns the mean "
    "probabilities of every --teacher.",
)
@click.option(
    "--distill-alpha",
    default=0.7,
    show_default=True,
    help="Share of the teachers' probabilities in the targets; the rest is the label.",
)
@click.option("--crop", default=40, show_default=True, help="VGG: side of the views cut from the 48x48 face.")
@click.option("--dense", default="1024,1024", show_default=True, help="VGG: units of the dense layers.")
@click.option(
    "--augment",
    type=click.Choice(["v2", "crop", "photo"]),
    default="v2",
    show_default=True,
    help="Augmentation: v2's; the crop recipe's (zoom 0.8-1.2, shift, flip, rotation 10 deg, erasing); "
    "photo: the crop recipe's after a real photo's degradations (scaled-up small faces, blur, JPEG, exposure).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="FER2013 folder (default: $FER2013_DIR or ../shared/data/fer2013).",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RUN_DIR,
    show_default=True,
    help="Checkpoints, history and state for --resume.",
)
@click.option(
    "--model-out",
    type=click.Path(path_type=Path),
    default=DEFAULT_MODEL,
    show_default=True,
    help="Where the best model (+ .json sidecar) is exported.",
)
@click.option(
    "--epochs",
    default=100,
    show_default=True,
    help="Length of the whole planned schedule (warm-up + cosine), across resumes.",
)
@click.option(
    "--max-minutes",
    default=0.0,
    show_default=True,
    help="Budget of this invocation, 0 = none; stops at an epoch boundary.",
)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--weight-decay", default=0.01, show_default=True)
@click.option("--label-smoothing", default=0.1, show_default=True)
@click.option(
    "--ema",
    "ema_momentum",
    default=0.999,
    show_default=True,
    help="Momentum of the weight average used for validation and export; 0 = off.",
)
@click.option(
    "--class-weight-power",
    default=0.0,
    show_default=True,
    help="Inverse-frequency class weights ^ power (0 = none, 1 = balanced).",
)
@click.option(
    "--classes", default=",".join(EMOTIONS), show_default=True, help="Comma-separated subset, e.g. happy,sad,neutral."
)
@click.option("--subset", default=0, show_default=True, help="Use ~N training images (quick runs).")
@click.option("--widths", default="32,64,128,256", show_default=True)
@click.option("--blocks", default="2,2,2", show_default=True, help="Residual blocks per stage.")
@click.option("--dropout", default=0.4, show_default=True)
@click.option(
    "--seed", default=1234, show_default=True, help="Seed of the validation split (and of the rest unless --init-seed)."
)
@click.option(
    "--init-seed",
    default=0,
    show_default=True,
    help="Seed of initialisation, shuffling and augmentation, 0 = --seed: another member of an "
    "ensemble trains on the same split with different weights.",
)
@click.option(
    "--mixup",
    default=0.0,
    show_default=True,
    help="Mixup alpha (each face blended with another of its batch, labels alike), 0 = off.",
)
@click.option("--patience", default=0, show_default=True, help="Early stopping, 0 = off.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on a CPU that has it, float16 on a GPU.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the schedule: --run-dir's last.keras, else the committed <model-out>.resume.npz.",
)
@click.option(
    "--export-only", is_flag=True, help="Only export --run-dir's best.keras (+ .tflite, sidecar) to --model-out."
)
@click.option(
    "--min-gain",
    default=0.01,
    show_default=True,
    help="Replace the served model only when validation accuracy beats it by this much "
    "(2,872 validation faces: one point is about 29 faces, the noise of one comparison).",
)
@click.option(
    "--member",
    is_flag=True,
    help="An ensemble member or teacher, never served: its best weights are kept in float16 "
    "(<model-out>.best.npz, loaded by models.export.load_member) beside its resume point.",
)
@click.option(
    "--force-export",
    is_flag=True,
    help="Export even when the served model did better on the validation split "
    "(by default it is replaced only by a better one).",
)
def main(
    run_dir: Path,
    model_out: Path,
    device: str,
    resume: bool,
    export_only: bool,
    member: bool,
    force_export: bool,
    min_gain: float,
    **options: object,
) -> None:
    """Train the emotion CNN on FER2013 and export the best checkpoint."""
    cfg = config_from_cli(click.get_current_context(), options)
    if resume or export_only:
        cfg = resumed_config(cfg, run_dir, model_out, export_only)
    hardware = setup_device(device, cfg.precision)
    if export_only:
        summary = interrupted_summary(run_dir, cfg, hardware)
    else:
        summary = run_training(cfg, run_dir, resume, committed=model_out)
        summary["hardware"] = hardware
    served = read_sidecar(model_out).get("training", {}).get("best_val_accuracy", 0.0)
    if member:
        export_member(run_dir, model_out, cfg, summary)
    elif export_only or force_export or summary["best_val_accuracy"] >= served + min_gain:
        export(run_dir, model_out, cfg, summary)
    else:  # the schedule goes on; the served model stays until a clearly better one exists
        write_resume_point(run_dir, model_out, cfg, summary)
        click.echo(
            f"kept the served {model_out.name}: this run's best validation accuracy "
            f"{summary['best_val_accuracy']:.2%} is not {min_gain:.1%} above its {served:.2%}; "
            "resume point written"
        )
    click.echo(json.dumps(summary, indent=1))


def interrupted_summary(run_dir: Path, cfg: TrainConfig, hardware: str) -> dict:
    """The run's summary.json; for a run stopped between epochs (killed, a session's end)
    it is made from the epochs the run folder recorded, so any run can be exported."""
    if (run_dir / "summary.json").exists():
        return json.loads((run_dir / "summary.json").read_text())
    from models.config import load_data
    from models.trainer import summarise

    state = json.loads((run_dir / "state.json").read_text())
    train, val = load_data(cfg)
    model = keras.models.load_model(run_dir / "last.keras", compile=False)
    summary = summarise(run_dir, len(train), len(val), state["elapsed_s"], True, model, cfg)
    return {**summary, "hardware": hardware}


CLI_TUPLES = {"classes": str, "widths": int, "blocks": int, "dense": int}
CLI_LISTS = ("teachers",)  # options given several times


def config_from_cli(ctx: click.Context, options: dict[str, object]) -> TrainConfig:
    """The run's config: the named recipe's, with the options given on the command line
    (not those left at their defaults) on top."""
    recipe = str(options.pop("recipe"))
    given: dict[str, object] = {}
    for name, value in options.items():
        if ctx.get_parameter_source(name) in (None, click.core.ParameterSource.DEFAULT):
            continue
        if name in CLI_TUPLES and isinstance(value, str):
            value = tuple(CLI_TUPLES[name](w.strip()) for w in value.split(",") if w.strip())
        if name in CLI_LISTS:
            value = tuple(str(v) for v in value)  # type: ignore[attr-defined]
        given[name] = value
    data_dir = given.pop("data_dir", None) or data.default_data_dir()
    return TrainConfig.recipe(recipe, data_dir=str(data_dir), **given)


def resumed_config(cfg: TrainConfig, run_dir: Path, model_out: Path, export_only: bool) -> TrainConfig:
    """The saved run's config (run_dir, else the committed resume point), with this
    invocation's data folder and budget (and, for --resume, a new planned length)."""
    saved_file = run_dir / "config.json"
    if not saved_file.exists():
        saved_file = resume_point_paths(model_out)["state"]
    saved = json.loads(saved_file.read_text())
    overrides: dict[str, object] = {"data_dir": cfg.data_dir, "max_minutes": cfg.max_minutes}
    if not export_only:
        overrides["epochs"] = cfg.epochs
    return TrainConfig.from_saved(saved.get("config", saved), **overrides)


if __name__ == "__main__":
    main()
