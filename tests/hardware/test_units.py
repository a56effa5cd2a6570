"""Human units in cluster and catalogue files: what a user writes reads as the right number,
and anything else is a ValueError that says what would be valid (fuzzed)."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.hardware.units import parse_bandwidth, parse_bytes, parse_flops, parse_power, parse_time


@pytest.mark.parametrize("text, bytes_per_s", [
    ("100 Mbit/s", 12.5e6), ("100 Mbps", 12.5e6), ("100mbit/s", 12.5e6), ("1 Gbit/s", 125e6),
    ("12.5 MB/s", 12.5e6), ("10 MBps", 10e6), ("1 GiB/s", 2.0 ** 30), ("3.35 TB/s", 3.35e12),
    (5, 5.0), ("1e9", 1e9), (2.5, 2.5),
])
def test_bandwidth(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text, seconds", [("5 ms", 5e-3), ("5ms", 5e-3), ("200 us", 2e-4), ("200 µs", 2e-4),
                                           ("1.5 s", 1.5), ("10 ns", 1e-8), (0, 0.0), ("0.25", 0.25)])
def test_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, nbytes", [("4 GiB", 4 * 2 ** 30), ("512 MB", 512e6), ("1 KiB", 1024),
                                          ("80 GB", 80e9), (1024, 1024)])
def test_bytes(text, nbytes):
    assert parse_bytes(text) == nbytes


def test_flops_and_power():
    assert parse_flops("472 GFLOP/s") == pytest.approx(472e9)
    assert parse_flops("1.3 TFLOPS") == pytest.approx(1.3e12)
    assert parse_flops("21 TOPS") == pytest.approx(21e12)
    assert parse_power("10 W") == 10 and parse_power("500 mW") == pytest.approx(0.5)


@pytest.mark.parametrize("parse, bad, hint", [
    (parse_bandwidth, "fast", "100 Mbit/s"), (parse_bandwidth, "5 furlongs", "Mbit/s"),
    (parse_bandwidth, "100 Mbit", "Mbit/s"),            # a size, not a rate
    (parse_bytes, "4 Gbit", "GiB"), (parse_time, "5 parsecs", "ms"), (parse_time, None, "5 ms"),
    (parse_bytes, True, "4 GiB"), (parse_bytes, "nan", "4 GiB"), (parse_bytes, float("inf"), "finite"),
    (parse_flops, "5 GHz", "GFLOP/s"), (parse_power, "5 V", "W"), (parse_bytes, [4], "4 GiB"),
])
def test_bad_values_say_what_is_valid(parse, bad, hint):
    with pytest.raises(ValueError, match=hint):
        parse(bad)


PARSERS = [parse_bandwidth, parse_bytes, parse_time, parse_flops, parse_power]


@given(st.sampled_from(PARSERS), st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none(),
                                           st.booleans(), st.lists(st.integers(), max_size=2)))
def test_fuzz_parsers_return_a_finite_number_or_raise_value_error(parse, value):
    try:
        out = parse(value)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(out, float) and math.isfinite(out)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False),
       st.sampled_from([("Mbit/s", 1e6 / 8), ("Gbps", 1e9 / 8), ("kB/s", 1e3), ("MiB/s", 2.0 ** 20), ("B/s", 1.0)]),
       st.sampled_from(["", " ", "  "]))
def test_fuzz_bandwidth_number_and_unit_round_trip(number, unit, space):
    text = f"{number!r}{space}{unit[0]}"
    assert parse_bandwidth(text) == pytest.approx(number * unit[1])
