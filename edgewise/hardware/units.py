"""Human units in cluster and catalogue files: "100 Mbit/s", "5 ms", "4 GiB", "472 GFLOP/s", "10 W".

Each parser also takes a plain number, read in the base unit (bytes, bytes/s, seconds,
FLOP/s, watts). A bad value raises ValueError whose message says what would be valid; the
YAML loaders turn that into the one-line error users see.
"""
from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S*)\s*$")

# Decimal and binary prefixes. Upper- and lower-case k/m/g/t both mean kilo..tera for data and
# FLOP figures: nobody writes milli-bytes, and "mbit/s" is a common spelling of Mbit/s.
_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}
_BINARY = {"ki": 2.0 ** 10, "mi": 2.0 ** 20, "gi": 2.0 ** 30, "ti": 2.0 ** 40}

_TIME = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9,
         "min": 60.0}
_POWER = {"w": 1.0, "mw": 1e-3, "kw": 1e3}

_DATA = re.compile(r"^(?P<prefix>[kKmMgGtTpP]i?)?(?P<unit>B|bytes?|b|bits?)$")
_FLOPS = re.compile(r"^(?P<prefix>[kKmMgGtTpP])?(?P<unit>flop/s|flops|op/s|ops)$", re.IGNORECASE)


def _split(value: object, what: str, example: str) -> tuple[float, str]:
    """The number and the unit text of `value`; a bare number has unit ''."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a {what} such as {example!r} or a plain number, got {value!r}")
    if isinstance(value, str):
        m = _NUMBER.match(value)
        if not m:
            raise ValueError(f"expected a {what} such as {example!r} or a plain number, got {value!r}")
        number, unit = float(m.group(1)), m.group(2)
    else:
        number, unit = float(value), ""
    if not math.isfinite(number):
        raise ValueError(f"expected a finite {what}, got {value!r}")
    return number, unit


def _prefix_scale(prefix: str | None) -> float:
    p = (prefix or "").lower()
    return _BINARY[p] if p in _BINARY else _SI[p]


def _data_scale(unit: str) -> tuple[float, bool] | None:
    """(bytes per unit, is_bits) for units like 'GiB', 'MB', 'Mbit', 'kb'; None if not data."""
    m = _DATA.match(unit)
    if not m:
        return None
    bits = m.group("unit").startswith("b") and m.group("unit") not in ("byte", "bytes")
    return _prefix_scale(m.group("prefix")) / (8.0 if bits else 1.0), bits


def parse_bytes(value: object) -> float:
    """'4 GiB' -> 4294967296.0; a plain number is bytes. Bits are refused: memory is in bytes."""
    number, unit = _split(value, "size", "4 GiB")
    if not unit:
        return number
    scale = _data_scale(unit)
    if scale is None or scale[1]:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, kB, MB, GB, KiB, MiB, GiB or TiB")
    return number * scale[0]


def parse_bandwidth(value: object) -> float:
    """'100 Mbit/s' -> 12500000.0 bytes/s; also 'Mbps', 'MB/s', 'GiB/s'; a plain number is bytes/s."""
    number, unit = _split(value, "bandwidth", "100 Mbit/s")
    if not unit:
        return number
    if unit.endswith("/s"):
        per_second = unit[:-2]
    elif unit.endswith("Bps"):              # MBps: megabytes per second
        per_second = unit[:-3] + "B"
    elif unit.lower().endswith("bps"):      # Mbps: megabits per second
        per_second = unit[:-3] + "bit"
    else:
        per_second = ""
    scale = _data_scale(per_second) if per_second else None
    if scale is None:
        raise ValueError(f"unknown bandwidth unit {unit!r} in {value!r}; use e.g. Mbit/s, Mbps, MB/s or GiB/s")
    return number * scale[0]


def parse_time(value: object) -> float:
    """'5 ms' -> 0.005; also s, us, µs, ns, min; a plain number is seconds."""
    number, unit = _split(value, "time", "5 ms")
    if not unit:
        return number
    if unit not in _TIME:
        raise ValueError(f"unknown time unit {unit!r} in {value!r}; use one of {', '.join(_TIME)}")
    return number * _TIME[unit]


def parse_flops(value: object) -> float:
    """'472 GFLOP/s' -> 4.72e11; also GFLOPS, TOPS (integer ops count alike); a plain number is FLOP/s."""
    number, unit = _split(value, "compute rate", "472 GFLOP/s")
    if not unit:
        return number
    m = _FLOPS.match(unit)
    if not m:
        raise ValueError(f"unknown compute unit {unit!r} in {value!r}; use e.g. GFLOP/s, TFLOPS or TOPS")
    return number * _SI[(m.group("prefix") or "").lower()]


def parse_power(value: object) -> float:
    """'5 W' -> 5.0; also mW, kW; a plain number is watts."""
    number, unit = _split(value, "power", "5 W")
    if not unit:
        return number
    if unit.lower() not in _POWER:
        raise ValueError(f"unknown power unit {unit!r} in {value!r}; use W, mW or kW")
    return number * _POWER[unit.lower()]
