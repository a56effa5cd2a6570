"""The one definition of throughput and latency that simulation and measurement share."""
import pytest
from hypothesis import given, strategies as st

from edgewise.plan.report import stream_metrics


def test_steady_pipeline():
    # one input finishes every 0.5 s after a 2 s fill; each takes 2 s end to end
    begin = [0.5 * k for k in range(10)]
    end = [b + 2.0 for b in begin]
    tput, lat, window = stream_metrics(begin, end, warmup=2)
    assert tput == pytest.approx(8 / (end[-1] - end[1]))
    assert lat.p50 == pytest.approx(2.0) and lat.p99 == pytest.approx(2.0)


def test_no_warmup_counts_from_first_start():
    tput, _, window = stream_metrics([0.0, 1.0], [1.0, 2.0], warmup=0)
    assert window == 2.0 and tput == 1.0


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.001, 10)), min_size=1, max_size=50),
       st.integers(0, 60))
def test_percentiles_are_ordered_and_bounded(pairs, warmup):
    begin = [b for b, _ in pairs]
    end = [b + d for b, d in pairs]
    tput, lat, _ = stream_metrics(begin, end, warmup)
    assert tput > 0
    assert min(d for _, d in pairs) - 1e-9 <= lat.p50 <= lat.p99 <= max(d for _, d in pairs) + 1e-9
