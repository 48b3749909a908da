"""Chart arithmetic on report dicts (no database): days become weeks, months or years over
long spans; thousands of folders become the top ones and "other"."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from PIL import Image

from db.reports import combine, summary_of
from emotion_batch.labels import EMOTIONS
from producer.charts import TOP_GROUPS, _buckets, bucket_unit, distribution_chart, timeline_chart, top_groups


def _group(**dominant: int) -> dict:
    counts = {e: dominant.get(e, 0) for e in EMOTIONS}
    faces = sum(counts.values())
    return {
        "images": faces + 1,
        "no_face": 1,
        "failed": 0,
        "pending": 0,
        "faces": faces,
        "dominant": counts,
        "share": {e: 100.0 * n / faces if faces else 0.0 for e, n in counts.items()},
        "mean": {e: 100.0 * n / faces if faces else 0.0 for e, n in counts.items()},
    }


def test_long_spans_are_bucketed_by_month() -> None:
    dates = {
        "2024-01-03": _group(happy=1),
        "2024-01-20": _group(sad=1),
        "2026-09-01": _group(happy=2),
        "2026-10-01": _group(),
        "unknown": _group(fear=5),
    }
    x, counts, unit = _buckets(dates)
    assert unit == "month" and [d.isoformat() for d in x] == ["2024-01-01", "2026-09-01"]
    assert counts[0]["happy"] == 1 and counts[0]["sad"] == 1 and counts[1]["happy"] == 2


def test_bucket_unit_keeps_the_points_bounded() -> None:
    start = date(2020, 1, 1)
    assert bucket_unit(start, start + timedelta(days=99)) == "day"
    assert bucket_unit(start, start + timedelta(days=150)) == "week"
    assert bucket_unit(start, start + timedelta(days=3 * 365)) == "month"
    assert bucket_unit(start, start + timedelta(days=30 * 365)) == "year"
    days = {(start + timedelta(days=i)).isoformat(): _group(happy=1) for i in range(0, 3000, 3)}
    x, counts, unit = _buckets(days)
    assert unit == "month" and len(x) <= 100 and sum(c["happy"] for c in counts) == 1000
    assert all(d.day == 1 for d in x)


def test_many_folders_become_the_top_ones_and_other() -> None:
    groups = {f"/photos/{i:05d}": _group(happy=i % 7, sad=1) for i in range(10_000)}
    shown = top_groups(groups)
    assert len(shown) == TOP_GROUPS + 1
    other = shown[f"other ({10_000 - TOP_GROUPS} folders)"]
    assert sum(g["images"] for g in shown.values()) == sum(g["images"] for g in groups.values())
    assert sum(g["faces"] for g in shown.values()) == sum(g["faces"] for g in groups.values())
    rest = [summary_of(g) for n, g in groups.items() if n not in shown]
    assert other["share"] == pytest.approx(combine(rest).share)
    png = distribution_chart(groups, "10,000 folders")
    with Image.open(io.BytesIO(png)) as image:
        assert image.width < 1500 and image.height < 1500


def test_short_spans_stay_daily_and_charts_render() -> None:
    dates = {"2024-01-03": _group(happy=1), "2024-01-05": _group(neutral=3)}
    assert _buckets(dates)[2] == "day"
    for png in (
        timeline_chart(dates, "t"),
        distribution_chart({"/a": _group(happy=2), "/b": _group()}, "d"),
        timeline_chart({}, "empty"),
    ):
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.width > 300


def test_terminal_table_has_groups_as_rows_truncated_with_a_note_and_csv_keeps_all() -> None:
    from rich.console import Console

    from producer.render import report_csv, report_table

    folders = {f"/photos/album-{i:04d}": _group(happy=i % 5 + 1, sad=1) for i in range(1000)}
    report = {
        "job": 7,
        "name": "big",
        "backend": "cnn",
        **_group(happy=3, sad=1),
        "model_versions": [],
        "folders": folders,
    }
    console = Console(width=80, record=True)
    report_table(report, console, max_rows=25)
    text = console.export_text()
    lines = [line for line in text.splitlines() if "album-" in line]
    assert len(lines) == 25 and all(len(line) <= 80 for line in text.splitlines())
    assert "album-0004" in text and "975 more groups not shown" in text and "happy" in text
    assert len(report_csv(report).splitlines()) == 1 + 1 + 1000  # header, (all), every folder
