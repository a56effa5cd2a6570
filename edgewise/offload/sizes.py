"""Byte sizes as people write them: "8GiB", "512MiB", "1.5GB", "4096"."""
from __future__ import annotations

import re

from edgewise.errors import EdgewiseError

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_bytes(text: str, what: str = "size") -> int:
    """Parse a positive byte size with an optional SI (GB) or binary (GiB) unit."""
    m = _SIZE.fullmatch(text)
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS:
        raise EdgewiseError(f"{what} {text!r} is not a size: write e.g. 8GiB, 512MiB, 1.5GB or a byte count")
    try:
        n = int(float(m.group(1)) * _UNITS[unit])
    except OverflowError:
        n = -1
    if n <= 0 or n >= 2**62:
        raise EdgewiseError(f"{what} {text!r} must be between 1 byte and 4 EiB")
    return n
