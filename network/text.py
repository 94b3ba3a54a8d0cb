"""The one rule for text that enters the network: what is refused at the API (`problem`), what is cleaned
on the click path (`clean`), and what is made storable where refusing is no option (`storable`).

Control characters (C0, DEL, C1) and lone surrogates are never stored: PostgreSQL refuses a NUL in
a text column and a lone surrogate cannot be encoded at all, while SQLite would keep both as
given. Tab, newline and carriage return are allowed in free text only (memos, reasons, notes).
Every check starts with `str.isprintable()`, which costs next to nothing for clean text; the
patterns run only on text that failed it.
"""

from __future__ import annotations

import re
from typing import overload

#: C0 controls, DEL, C1 controls and lone surrogates.
UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same, except tab, newline and carriage return (free text keeps its lines).
UNSTORABLE_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: What ends a value the click path had to shorten.
TRUNCATED = "\u2026"


def problem(value: str, *, free_text: bool = False) -> str | None:
    """Return why `value` may not be stored (control characters, lone surrogates), or None."""
    if value.isprintable():
        return None
    found = (UNSTORABLE_FREE_TEXT if free_text else UNSTORABLE).search(value)
    if found is None:
        return None
    if _SURROGATE.match(found.group()):
        return "must not contain lone surrogates (not valid Unicode)"
    return "must not contain control characters" + ("" if not free_text else " (tab and newline are allowed)")


def clean(value: str, limit: int) -> str:
    """Return `value` without control characters or lone surrogates, cut to `limit` with a trailing marker."""
    if not value.isprintable():
        value = UNSTORABLE.sub("", value)
    if len(value) > limit:
        value = value[: limit - 1] + TRUNCATED
    return value


def storable(value: str, limit: int, *, free_text: bool) -> str:
    """Return `value` cut to `limit` (ending in the marker when cut), what a text column cannot hold replaced by U+FFFD.

    For text the network writes itself from what it was given (a log line, a dead letter's reason, a
    partner's answer), where refusing is no option. `free_text` keeps tab, newline and carriage return.
    """
    if len(value) > limit:
        value = value[: limit - 1] + TRUNCATED
    if value.isprintable():
        return value
    return (UNSTORABLE_FREE_TEXT if free_text else UNSTORABLE).sub("\ufffd", value)


@overload
def cleaned(value: str, limit: int) -> str: ...
@overload
def cleaned(value: None, limit: int) -> None: ...
@overload
def cleaned(value: str | None, limit: int) -> str | None: ...
def cleaned(value: str | None, limit: int) -> str | None:
    """Return `clean(value, limit)`, or the value itself when it is None, empty or already clean (the hot path's call)."""
    if not value or (len(value) <= limit and value.isprintable()):
        return value
    return clean(value, limit)
