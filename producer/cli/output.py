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
    """The report dict as a table, JSON, CSV or Parquet (Parquet needs `out_file`)."""
    if out_file is None:
        _emit(data, fmt, None)
        return
    with writing(out_file):
        _emit(data, fmt, out_file)


def _emit(data: dict[str, Any], fmt: str, out_file: Path | None) -> None:
    if fmt == "parquet":
        from producer.report_files import write_parquet

        if out_file is None:
            raise click.UsageError("--format parquet needs --out FILE")
        write_parquet(data, out_file)
        return
    if fmt == "table" and out_file is None:
        render.report_table(data, out)
        return
    if fmt == "table":
        assert out_file is not None
        with open(out_file, "w") as handle:
            render.report_table(data, Console(file=handle, width=120))
        return
    text = render.report_json(data) if fmt == "json" else render.report_csv(data)
    if out_file:
        out_file.write_text(text + ("\n" if fmt == "json" else ""))
    else:
        click.echo(text)
