"""Turning a library's exception into the one line a user-facing EdgewiseError may carry."""
from __future__ import annotations


def first_line(e: BaseException) -> str:
    """`ValueError: the first non-blank line of the message` (tracebacks and graph dumps from
    torch run to many lines; the first says what went wrong)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
