"""One self-contained HTML page per job: counts, the emotion table, the charts and face
thumbnails per emotion, all embedded (base64), so the file opens anywhere, offline."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from db.reports import GROUP_KEYS
from emotion_batch.labels import EMOTIONS
from producer.charts import top_groups
from producer.thumbnails import Thumbnail, png_uri

TABLE_ROWS = 50  # groups per table; the rest are one "other" row (CSV/JSON/Parquet list them all)
FAILURES_SHOWN = 200  # failed images listed with their reasons; the count says how many in all

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .muted{color:#666}
table{border-collapse:collapse;margin:1em 0} th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f2f2f2}
table.failures td{text-align:left;word-break:break-all} table.failures td+td{color:#b3261e}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{background:#f6f8fa;border-radius:8px;padding:.8em 1.2em}
.card b{display:block;font-size:1.6em} img.chart{max-width:100%;border:1px solid #eee}
.faces{display:flex;gap:.6em;flex-wrap:wrap} figure{margin:0;text-align:center;font-size:.8em}
figure img{width:112px;height:112px;object-fit:cover;border-radius:6px}
"""


@dataclass(frozen=True)
class HtmlParts:
    """What the page shows: the job report (with folders and dates), charts and faces."""

    report: dict[str, Any]
    charts: dict[str, bytes]
    thumbnails: dict[str, list[Thumbnail]]
    videos: str = ""  # the videos section (producer.video_outputs.video_html)
    failures: tuple[tuple[str, str], ...] = ()  # (path, reason) of the first failed images


def _cards(report: dict[str, Any]) -> str:
    items = [
        ("images", report["images"]),
        ("faces", report["faces"]),
        ("no face", report["no_face"]),
        ("failed", report["failed"]),
        ("pending", report["pending"]),
    ]
    return (
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{int(v)}</b>{escape(k)}</div>" for k, v in items)
        + "</div>"
    )


def _emotion_table(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{e}</td><td>{report['dominant'][e]}</td><td>{report['share'][e]:.1f}</td>"
        f"<td>{report['mean'][e]:.1f}</td></tr>"
        for e in EMOTIONS
    )
    return f"<table><tr><th>emotion</th><th>faces (dominant)</th><th>share %</th><th>mean %</th></tr>{rows}</table>"


def _group_table(title: str, groups: dict[str, dict[str, Any]], noun: str) -> str:
    total = len(groups)
    groups = top_groups(groups, TABLE_ROWS, noun)
    note = (
        f"<p class='muted'>The {TABLE_ROWS} {escape(noun)} with the most images of {total}; the rest in "
        "one row. <code>producer report --format csv</code> (or json, parquet) lists every one.</p>"
        if len(groups) < total
        else ""
    )
    head = "".join(f"<th>{c}</th>" for c in ("images", "faces", "no face", "failed", *EMOTIONS))
    body = "".join(
        f"<tr><td>{escape(name)}</td><td>{g['images']}</td><td>{g['faces']}</td><td>{g['no_face']}</td>"
        f"<td>{g['failed']}</td>" + "".join(f"<td>{g['share'][e]:.0f}%</td>" for e in EMOTIONS) + "</tr>"
        for name, g in groups.items()
    )
    return f"<h2>{escape(title)}</h2>{note}<table><tr><th>{escape(title.split()[-1])}</th>{head}</tr>{body}</table>"


def _failures(failures: tuple[tuple[str, str], ...], failed: int) -> str:
    """The failed images with their reasons, as the web's job page lists them."""
    if not failures:
        return ""
    more = f", the first {len(failures)}" if failed > len(failures) else ""
    rows = "".join(f"<tr><td>{escape(path)}</td><td>{escape(reason)}</td></tr>" for path, reason in failures)
    return (
        f"<h2>Failed images <span class='muted'>({failed}{more})</span></h2>"
        f"<table class='failures'><tr><th>image</th><th>reason</th></tr>{rows}</table>"
    )


def _charts(charts: dict[str, bytes]) -> str:
    return "".join(
        f"<p><img class='chart' alt='{escape(name)}' src='{png_uri(png)}'></p>" for name, png in charts.items()
    )


def _faces(thumbnails: dict[str, list[Thumbnail]]) -> str:
    sections = []
    for emotion in EMOTIONS:
        figures = "".join(
            f"<figure><img alt='{escape(t.caption)}' src='{t.data_uri}'><figcaption>{escape(t.caption)}"
            "</figcaption></figure>"
            for t in thumbnails.get(emotion, [])
        )
        if figures:
            sections.append(f"<h3>{emotion}</h3><div class='faces'>{figures}</div>")
    return "<h2>Faces</h2>" + ("".join(sections) or "<p class='muted'>no faces</p>")


def render_html(parts: HtmlParts) -> str:
    """The whole page as one string."""
    r = parts.report
    title = f"Job {r['job']}: {r['name']}"
    versions = ", ".join(r.get("model_versions") or []) or "-"
    detectors = ", ".join(r.get("detectors") or []) or "-"
    groups = "".join(_group_table(f"Per {key[:-1]}", r[key], key) for key in GROUP_KEYS.values() if r.get(key))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p class='muted'>backend {escape(r['backend'])}, model {escape(versions)}, "
        f"face detector {escape(detectors)}</p>"
        f"{_cards(r)}{_failures(parts.failures, int(r['failed']))}"
        f"<h2>Emotions</h2>{_emotion_table(r)}{_charts(parts.charts)}{groups}"
        f"{parts.videos}{_faces(parts.thumbnails)}</body></html>"
    )
