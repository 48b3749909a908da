"""The training schedule picks the first unfinished step and resumes it from its point."""

import json

from models import schedule


def write_state(folder, name, **state):
    (folder / f"{name}.resume.json").write_text(json.dumps(state))


def test_the_schedule_resumes_the_first_unfinished_step(tmp_path, monkeypatch):
    monkeypatch.setattr(schedule, "MEMBERS_DIR", tmp_path)
    step = schedule.next_step()
    assert step is not None and step.name == "vgg_a"
    first = schedule.train_args(step, tmp_path / "run", 30)
    assert first[:2] == ["--recipe", "vgg"] and "--resume" not in first and "--member" in first
    assert first[first.index("--model-out") + 1] == str(tmp_path / "vgg_a.keras")

    write_state(tmp_path, "vgg_a", epoch=40, best_epoch=38, best=0.66)
    again = schedule.train_args(schedule.next_step(), tmp_path / "run", 30)
    assert again[0] == "--resume" and "--recipe" not in again  # the saved config rules

    write_state(tmp_path, "vgg_a", epoch=120, best_epoch=118)  # ran its planned epochs
    write_state(tmp_path, "vgg_b", epoch=61, best_epoch=41)  # stalled for 20 epochs
    assert schedule.next_step().name == "vgg_c"
    write_state(tmp_path, "vgg_c", epoch=120, best_epoch=100)
    student = schedule.next_step()
    assert student.name == "student"
    args = schedule.train_args(student, tmp_path / "run", 30)
    assert args.count("--teacher") == 3
