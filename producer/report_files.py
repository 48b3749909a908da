"""A report as a table of groups (pandas), for Parquet and other columnar files."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import pandas as pd

from db.reports import REPORT_COLUMNS, report_rows


def report_frame(report: dict[str, Any]) -> pd.DataFrame:
    """`db.reports.report_rows` as a DataFrame with `REPORT_COLUMNS`."""
    return pd.DataFrame(report_rows(report), columns=list(REPORT_COLUMNS))


def write_parquet(report: dict[str, Any], path: Path | IO[bytes]) -> None:
    """The report's groups as a Parquet file (pyarrow); with `--by video`, one row per video."""
    if "videos" in report:
        import io

        from producer.video_outputs import video_csv

        pd.read_csv(io.StringIO(video_csv(report))).to_parquet(path, index=False)
        return
    report_frame(report).to_parquet(path, index=False)
