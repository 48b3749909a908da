"""File paths as text the databases accept, losslessly.

POSIX file names are bytes; Python hands names that are not valid UTF-8 over as `str`
with lone surrogates (`surrogateescape`), which neither SQLite nor PostgreSQL can store.
Such a path is stored as `bytes:` followed by its raw bytes percent-encoded
(`bytes:/photos/caf%E9.jpg`); every other path is stored as it is. Stored paths are
absolute, so a value starting with `bytes:` is never a real path, and `from_db(to_db(p))
== p` for every path.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

PREFIX = "bytes:"


def to_db(path: str) -> str:
    """The text stored for `path` (unchanged unless it is not valid UTF-8)."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return PREFIX + quote_from_bytes(os.fsencode(path), safe="/")


def from_db(text: str) -> str:
    """The path to open for stored `text` (surrogate-escaped where it was not UTF-8)."""
    if text.startswith(PREFIX):
        return os.fsdecode(unquote_to_bytes(text[len(PREFIX) :]))
    return text


def storable(text: str) -> str:
    """Free text (an error message that may quote a file name) that a database accepts."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
