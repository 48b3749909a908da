"""Writing a report in the format asked for, to stdout or a file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from producer import render
from producer.cli.context import console, out

FORMATS = ("table", "json", "csv", "parquet", "html")


@contextmanager
def writing(target: Path) -> Iterator[None]:
    """File system errors while writing `target` (a folder, a full disk, /dev/full, no
    permission) as one line and a non-zero exit instead of a traceback."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise click.ClickException(f"cannot write {exc.filename or target}: {reason}") from exc


def emit_text(text: str, out_file: Path | None) -> None:
    """`text` to `out_file` (saying so on stderr), else to stdout."""
    if out_file:
        with writing(out_file):
            out_file.write_text(text, encoding="utf-8")
        console.print(f"wrote {out_file}")
    else:
        click.echo(text)


def emit_report(data: dict[str, Any], fmt: str, out_file: Path | None) -> None:
    """The report dict as a table, JSON, CSV or Parquet (Parquet needs `out_file`); a file
    written is named on stderr, whatever its format."""
    if fmt == "table" and out_file is None:
        render.report_table(data, out)
        return
    if out_file is None:
        if fmt == "parquet":
            raise click.UsageError("--format parquet needs --out FILE")
        click.echo(render.report_json(data) if fmt == "json" else render.report_csv(data))
        return
    with writing(out_file):
        if fmt == "parquet":
            from producer.report_files import write_parquet

            write_parquet(data, out_file)
        elif fmt == "table":
            with open(out_file, "w", encoding="utf-8") as handle:
                render.report_table(data, Console(file=handle, width=120))
        else:
            out_file.write_text(render.report_json(data) + "\n" if fmt == "json" else render.report_csv(data))
    console.print(f"wrote {out_file}", markup=False, soft_wrap=True)
