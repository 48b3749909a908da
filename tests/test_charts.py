"""Chart arithmetic on report dicts (no database): days become months over a long span."""

from __future__ import annotations

import io

from PIL import Image

from models.labels import EMOTIONS
from producer.charts import _buckets, distribution_chart, timeline_chart


def _group(**dominant: int) -> dict:
    counts = {e: dominant.get(e, 0) for e in EMOTIONS}
    faces = sum(counts.values())
    return {"faces": faces, "dominant": counts, "share": {e: 100.0 * n / faces if faces else 0.0 for e, n in counts.items()}}


def test_long_spans_are_bucketed_by_month() -> None:
    dates = {"2024-01-03": _group(happy=1), "2024-01-20": _group(sad=1), "2024-06-01": _group(happy=2),
             "2024-07-01": _group(), "unknown": _group(fear=5)}
    x, counts, unit = _buckets(dates)
    assert unit == "month" and [d.isoformat() for d in x] == ["2024-01-01", "2024-06-01"]
    assert counts[0]["happy"] == 1 and counts[0]["sad"] == 1 and counts[1]["happy"] == 2


def test_short_spans_stay_daily_and_charts_render() -> None:
    dates = {"2024-01-03": _group(happy=1), "2024-01-05": _group(neutral=3)}
    assert _buckets(dates)[2] == "day"
    for png in (timeline_chart(dates, "t"), distribution_chart({"/a": _group(happy=2), "/b": _group()}, "d"),
                timeline_chart({}, "empty")):
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.width > 300
