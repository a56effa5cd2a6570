"""The runtime's own costs: a fixed plus a per-byte cost per message, fitted from profile rows."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.cost.runtime import FREE, Linear, RuntimeCost, fit_runtime
from edgewise.hardware.profile_db import Measurement


def rows(fixed, per_byte, sizes=(4096, 262144, 2097152), kinds=("input", "send", "recv")):
    return [Measurement(kind="runtime", op_class=k, dtype="uint8", bytes=float(b), time_s=fixed + per_byte * b)
            for k in kinds for b in sizes]


@given(st.floats(1e-7, 1e-2), st.floats(0, 1e-8))
def test_exact_costs_are_recovered(fixed, per_byte):
    cost = fit_runtime(rows(fixed, per_byte))
    for line in (cost.input, cost.send, cost.recv):
        assert line.fixed_s == pytest.approx(fixed, rel=1e-6, abs=1e-12)
        assert line.per_byte_s == pytest.approx(per_byte, rel=1e-6, abs=1e-18)


def test_noisy_rows_never_give_a_negative_cost():
    # bigger messages measured as cheaper: a line through them would pay back
    noisy = [Measurement(kind="runtime", op_class=k, dtype="uint8", bytes=float(b), time_s=t)
             for k in ("input", "send", "recv") for b, t in ((1e3, 3e-4), (1e6, 2e-4), (4e6, 1e-4))]
    cost = fit_runtime(noisy)
    assert cost.send.fixed_s > 0 and cost.send.per_byte_s == 0
    # a steep line whose intercept falls below zero keeps only its slope
    steep = [Measurement(kind="runtime", op_class=k, dtype="uint8", bytes=float(b), time_s=t)
             for k in ("input", "send", "recv") for b, t in ((1e3, 1e-7), (1e6, 2e-3), (2e6, 4.1e-3))]
    assert fit_runtime(steep).recv.fixed_s == 0 and fit_runtime(steep).recv.per_byte_s > 0


def test_a_device_without_runtime_rows_has_no_runtime_cost():
    assert fit_runtime([]) is None
    assert fit_runtime(rows(1e-4, 1e-9, kinds=("send", "recv"))) is None     # input never measured
    assert FREE.send(1 << 20) == FREE.recv(1 << 20) == FREE.input(1 << 20) == 0


def test_a_slower_device_pays_proportionally_more():
    cost = RuntimeCost(send=Linear(1e-4, 1e-9))
    assert cost.slower(4).send(1000) == pytest.approx(4 * cost.send(1000))


def test_the_loop_is_fitted_where_measured_and_free_where_it_never_was():
    measured = rows(1e-4, 1e-9) + [Measurement(kind="runtime", op_class="loop", dtype="uint8", bytes=4096.0, time_s=3e-5)]
    assert fit_runtime(measured).loop(4096) == pytest.approx(3e-5)
    assert fit_runtime(rows(1e-4, 1e-9)).loop(4096) == 0      # profiles from before the loop was measured
    assert RuntimeCost(loop=Linear(2e-5)).slower(3).loop(0) == pytest.approx(6e-5)
