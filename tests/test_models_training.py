"""A real (tiny) training run, save/load, TFLite export and evaluation artefacts.

Small subsets and a narrow network keep each test well under a minute on 2 CPU cores.
"""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from emotion_batch.runtime import load_classifier_fn
from models import callbacks, config, data, evaluate, export, train, trainer
from models.export import export_tflite
from tests.test_models_data import fer_dir

TINY = (8, 16, 32, 64)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Train a tiny net for 3 epochs on ~600 images; return (run_dir, cfg, train split, losses)."""
    import keras

    run_dir = tmp_path_factory.mktemp("run")
    cfg = config.TrainConfig(
        data_dir=str(fer_dir()), epochs=3, subset=600, widths=TINY, warmup_epochs=0, lr=3e-3, patience=5
    )
    keras.utils.set_random_seed(cfg.seed)
    train_split, _ = config.load_data(cfg)
    plain = data.make_dataset(train_split, 128, training=False, one_hot=True)
    before = trainer.make_model(cfg).evaluate(plain, verbose=0, return_dict=True)["loss"]
    summary = trainer.run_training(cfg, run_dir, verbose=0)
    model = keras.models.load_model(run_dir / "last.keras")
    after = model.evaluate(plain, verbose=0, return_dict=True)["loss"]
    return run_dir, cfg, summary, before, after


def test_training_lowers_the_loss_and_writes_its_files(tiny_run):
    run_dir, cfg, summary, before, after = tiny_run
    assert after < before - 0.05, (before, after)
    for name in ("best.keras", "last.keras", "history.csv", "history.json", "state.json"):
        assert (run_dir / name).exists(), name
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["val_accuracy"]) == summary["epochs_run"] == 3
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 3


def test_resume_continues_from_the_saved_epoch(tiny_run, tmp_path):
    import shutil

    run_dir, cfg, _, _, _ = tiny_run
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    cfg4 = config.TrainConfig(**{**cfg.__dict__, "epochs": 4})
    summary = trainer.run_training(cfg4, resumed, resume=True, verbose=0)
    assert summary["epochs_run"] == 4


def test_save_load_round_trip_and_tflite_match(tiny_run, tmp_path):
    import keras

    run_dir, *_ = tiny_run
    model = keras.models.load_model(run_dir / "best.keras")
    path = tmp_path / "m.keras"
    model.save(path)
    x = data.load_split("test", fer_dir()).x[:64]
    direct = model(x.astype(np.float32), training=False).numpy()
    via_tf = load_classifier_fn(path, "tf")(x)
    assert via_tf.dtype == np.float32 and via_tf.shape == (64, 7)
    assert np.array_equal(via_tf, load_classifier_fn(path, "tf")(x))
    # Two float32 paths through oneDNN (eager call vs tf.function) may pick different kernels:
    # they agree to float32 rounding (1e-6 was exceeded by 1.1e-6 once), not bit for bit.
    np.testing.assert_allclose(via_tf, direct, atol=1e-5)
    export_tflite(path)
    np.testing.assert_allclose(load_classifier_fn(path, "tflite")(x), via_tf, atol=1e-4)
    np.testing.assert_allclose(via_tf.sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_writes_its_artefacts(tiny_run, tmp_path):
    run_dir, cfg, summary, *_ = tiny_run
    model_out = tmp_path / "model" / "emotion_cnn.keras"
    export.export(run_dir, model_out, cfg, {**summary, "hardware": "test"})
    assert not json.loads(model_out.with_suffix(".json").read_text())["training"]["config"]["data_dir"].startswith("/")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        evaluate.main,
        [
            "--model",
            str(model_out),
            "--out-dir",
            str(out),
            "--limit",
            "150",
            "--no-deepface",
            "--data-dir",
            str(fer_dir()),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("curves.png", "confusion.png", "report.md", "metrics.json"):
        assert (out / name).stat().st_size > 500, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["ours"]["plain"]["n"] - 150) <= 7  # stratified: rounded per class
    assert "macro avg" in (out / "report.md").read_text()


def test_export_writes_a_resume_point_a_fresh_clone_can_continue(tiny_run, tmp_path):
    """No run folder (a fresh clone): --resume continues the schedule from the committed
    <model>.resume.npz + .resume.json at the epoch reached."""
    run_dir, cfg, summary, *_ = tiny_run
    model_out = tmp_path / "model" / "emotion_cnn.keras"
    export.export(run_dir, model_out, cfg, {**summary, "hardware": "test"})
    point = export.resume_point_paths(model_out)
    state = json.loads(point["state"].read_text())
    assert state["epoch"] == 3 and state["epochs_planned"] == 3
    assert point["weights"].stat().st_size < 2_000_000
    assert read_sidecar_of(model_out)["tflite_quantization"] == "int8"
    fresh = tmp_path / "fresh-run"
    asked = config.TrainConfig(data_dir=cfg.data_dir, epochs=5)
    cfg5 = train.resumed_config(asked, fresh, model_out, export_only=False)
    assert cfg5.widths == cfg.widths and cfg5.epochs == 5
    trainer.run_training(cfg5, fresh, resume=True, verbose=0, committed=model_out)
    assert json.loads((fresh / "state.json").read_text())["epoch"] == 5
    # the committed history seeds the new folder, so the curves span the whole schedule
    assert export.read_history(fresh / "history.csv")["epoch"] == [0, 1, 2, 3, 4]
    assert (fresh / "best.keras").exists()


def test_a_bf16_model_serves_as_a_float32_copy():
    import keras

    cfg = config.TrainConfig(data_dir="unused", widths=TINY, blocks=(1, 1, 1))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = config.build_for(cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain = export.float32_copy(mixed, cfg)
    assert all(w.dtype == "float32" for w in plain.weights)
    assert plain.layers[-2].compute_dtype == "float32"
    x = np.random.default_rng(0).integers(0, 256, (16, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(plain(x).numpy(), mixed(x).numpy().astype(np.float32), atol=0.03)


def test_the_schedule_warms_up_then_decays_to_zero_at_the_planned_end():
    cfg = config.TrainConfig(data_dir="unused", epochs=10, warmup_epochs=2, lr=1e-3)
    rates = [callbacks.CosineSchedule(cfg).rate(e) for e in range(11)]
    assert rates[0] < rates[1] < rates[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[2:], rates[3:]))
    assert rates[10] == pytest.approx(0.0, abs=1e-12)


def read_sidecar_of(path):
    from emotion_batch.sidecar import read_sidecar

    return read_sidecar(path)


def test_crop_views_are_the_four_corners_the_centre_and_their_mirrors():
    from emotion_batch.layers import CropViews

    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    views = CropViews(40)(faces, training=False).numpy().reshape(3, 10, 40, 40, 1)
    for i, (r, c) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8), (4, 4)]):
        np.testing.assert_array_equal(views[:, i], faces[:, r : r + 40, c : c + 40])
        np.testing.assert_array_equal(views[:, 5 + i], faces[:, r : r + 40, c : c + 40][:, :, ::-1])
    random_views = CropViews(40)(faces, training=True).numpy()
    assert random_views.shape == (3, 40, 40, 1)
    for face, view in zip(faces, random_views):  # each a 40x40 window of its own face
        windows = np.lib.stride_tricks.sliding_window_view(face[..., 0], (40, 40))
        assert (windows == view[..., 0]).all(axis=(-1, -2)).any()


def test_the_vgg_reads_each_face_as_the_average_of_its_ten_views():
    import keras

    from models.architecture import build_vgg

    keras.utils.set_random_seed(5)
    model = build_vgg(widths=(4, 8, 8, 8), dense=(16,))
    faces = np.random.default_rng(2).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    probs = model(faces, training=False).numpy()
    assert probs.shape == (4, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    views = model.get_layer("views")(faces, training=False)
    per_view = keras.Model(model.get_layer("rescale").input, model.get_layer("view_probs").output)(views)
    np.testing.assert_allclose(probs, per_view.numpy().reshape(4, 10, 7).mean(axis=1), atol=1e-5)


def test_the_plateau_schedule_cuts_the_rate_after_stalled_epochs_and_resumes_its_state():
    import keras

    cfg = config.TrainConfig.recipe("vgg", data_dir="unused", plateau_patience=2)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(cfg.lr))
    schedule = callbacks.PlateauSchedule(cfg)
    schedule.set_model(model)
    for epoch, score in enumerate([0.5, 0.6, 0.6, 0.55]):  # two epochs without a better score
        schedule.on_epoch_begin(epoch)
        schedule.on_epoch_end(epoch, {"val_accuracy": score})
    assert schedule.state == {"lr": pytest.approx(0.0075), "best": 0.6, "wait": 0}
    resumed = callbacks.PlateauSchedule(cfg, json.loads(json.dumps(schedule.state)))
    resumed.set_model(model)
    resumed.on_epoch_begin(4)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0075)


def test_the_vgg_recipe_trains_resumes_and_exports_from_the_cli(tmp_path):
    """A tiny VGG-recipe run through the real CLI, resumed from its committed point on a
    fresh run folder: the config (recipe plus the options given) and the plateau state
    survive, and the export serves ten-view probabilities through TFLite."""
    run, model_out = tmp_path / "run", tmp_path / "out" / "vgg.keras"
    common = ["--data-dir", str(fer_dir()), "--model-out", str(model_out), "--device", "cpu"]
    small = ["--subset", "300", "--widths", "4,8,8,8", "--dense", "16"]
    result = CliRunner().invoke(
        train.main, ["--recipe", "vgg", "--run-dir", str(run), "--epochs", "1", *small, *common]
    )
    assert result.exit_code == 0, result.output
    state = json.loads(model_out.with_suffix(".resume.json").read_text())
    assert state["config"]["arch"] == "vgg" and state["config"]["optimizer"] == "sgd"
    assert state["config"]["widths"] == [4, 8, 8, 8] and state["plateau"]["lr"] == pytest.approx(0.01)
    result = CliRunner().invoke(
        train.main, ["--resume", "--run-dir", str(tmp_path / "fresh"), "--epochs", "2", "--force-export", *common]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(model_out.with_suffix(".resume.json").read_text())["epoch"] == 2
    x = data.load_split("test", fer_dir()).x[:32]
    via_tflite = load_classifier_fn(model_out, "tflite")(x)
    np.testing.assert_allclose(via_tflite.sum(axis=1), 1.0, atol=1e-2)  # int8 output steps
    assert np.abs(via_tflite - load_classifier_fn(model_out, "tf")(x)).max() < 0.05


def test_a_student_learns_the_teachers_mean_probabilities(tiny_run, tmp_path):
    """Distillation through the same training run: the targets are the teachers' mean
    probabilities (each teacher as served) blended with the labels, cached per teacher set."""
    from models.distill import distillation_targets, teacher_probabilities

    run_dir, cfg, *_ = tiny_run
    teacher = str(run_dir / "best.keras")
    student = config.TrainConfig(**{**cfg.__dict__, "epochs": 1, "teachers": (teacher, teacher), "distill_alpha": 0.6})
    summary = trainer.run_training(student, tmp_path / "student", verbose=0)
    assert summary["epochs_run"] == 1
    train_split, _ = config.load_data(student)
    soft = teacher_probabilities((teacher, teacher), train_split.x, tmp_path / "student" / "teachers.npz")
    np.testing.assert_allclose(soft, load_classifier_fn(teacher, "tf")(train_split.x), atol=1e-5)
    targets = distillation_targets(soft, train_split.y, 0.6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        targets[np.arange(len(targets)), train_split.y],
        0.6 * soft[np.arange(len(soft)), train_split.y] + 0.4,
        atol=1e-6,
    )


def test_an_exported_member_is_small_and_teaches_as_it_was_trained(tiny_run, tmp_path):
    """--member keeps float16 best weights (no .keras/.tflite); load_member rebuilds the
    net, and a distillation teacher given by the member's path reads it so."""
    import keras

    from models.distill import teacher_fn

    run_dir, cfg, *_ = tiny_run
    member = tmp_path / "members" / "m.keras"
    run_dir = shutil.copytree(run_dir, tmp_path / "killed")
    (run_dir / "summary.json").unlink()  # a run stopped between epochs writes none
    result = CliRunner().invoke(
        train.main, ["--export-only", "--member", "--run-dir", str(run_dir), "--model-out", str(member)]
    )
    assert result.exit_code == 0, result.output
    assert not member.exists() and not member.with_suffix(".tflite").exists()
    assert member.with_suffix(".best.npz").exists() and member.with_suffix(".resume.npz").exists()
    card = json.loads(member.with_suffix(".json").read_text())["training"]
    assert card["epochs_run"] == 3 and card["stopped_by_time_budget"]
    best = keras.models.load_model(run_dir / "best.keras", compile=False)
    x = data.load_split("test", fer_dir()).x[:32]
    expected = best(x.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(export.load_member(member)(x.astype(np.float32)).numpy(), expected, atol=0.02)
    np.testing.assert_allclose(teacher_fn(member)(x), expected, atol=0.02)
