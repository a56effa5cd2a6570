"""Fitting the roofline from the profile database: rows the roofline itself generated give back
its efficiencies, noise and outliers barely move them, and the fitted CostModel costs ops."""
import random

import pytest

from edgewise.cost.fit import fit_cost_model, fit_devices, fit_efficiency, fitted_or_default
from edgewise.cost.roofline import CostModel, Efficiency
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import Op
from edgewise.hardware.catalogue import device
from edgewise.hardware.profile_db import Measurement, ProfileDB, Run

TRUE = Efficiency(compute={"matmul": 0.62, "conv": 0.31, "attention": 0.2, "other": 0.1}, memory=0.45, overhead_s=15e-6)
PI = device("raspberry-pi-4")


def roofline_time(flops, nbytes, cls, dev=PI, eff=TRUE):
    return max(flops / (dev.peak() * eff.compute[cls]), nbytes / (dev.mem_bandwidth_bytes_per_s * eff.memory)) + eff.overhead_s


def synthetic_rows(noise=0.0, seed=0, classes=("matmul", "conv", "attention", "other")):
    rng = random.Random(seed)
    jitter = (lambda: rng.lognormvariate(0, noise)) if noise else (lambda: 1.0)
    rows = [Measurement("overhead", "other", "float32", TRUE.overhead_s * jitter(), bytes=12) for _ in range(5)]
    rows += [Measurement("memory", "memory", "float32", roofline_time(0, b, "other") * jitter(), bytes=b)
             for b in (1e6, 1e7, 1e8)]
    for cls in classes:
        for f in (1e7, 1e8, 1e9, 3e9):
            b = f / 50                                   # compute-bound: intensity 50 FLOP/B
            rows.append(Measurement("op", cls, "float32", roofline_time(f, b, cls) * jitter(), flops=f, bytes=b))
        b = 1e8                                          # memory-bound: says nothing about compute
        rows.append(Measurement("op", cls, "float32", roofline_time(1e6, b, cls) * jitter(), flops=1e6, bytes=b))
    rows += [Measurement("op", "other", "float32", roofline_time(0, b, "other") * jitter(), bytes=b) for b in (4e6, 4e7)]
    return rows


def assert_close(fitted: Efficiency, rel: float):
    for cls, value in TRUE.compute.items():
        assert fitted.compute[cls] == pytest.approx(value, rel=rel), cls
    assert fitted.memory == pytest.approx(TRUE.memory, rel=rel)
    assert fitted.overhead_s == pytest.approx(TRUE.overhead_s, rel=rel)


def test_recovers_the_efficiencies_that_made_the_rows():
    fitted = fit_efficiency(synthetic_rows(), PI)
    assert_close(fitted.efficiency, rel=1e-9)
    assert fitted.rows_used["matmul"] == 4               # the memory-bound matmul row was left out
    assert fitted.rows_used["memory"] == 5 and fitted.rows_used["overhead"] == 5


def test_noise_and_an_outlier_barely_move_the_fit():
    rows = synthetic_rows(noise=0.05, seed=1)
    rows.append(Measurement("op", "matmul", "float32", 50.0, flops=1e9, bytes=1e6))  # a 50 s hiccup
    assert_close(fit_efficiency(rows, PI).efficiency, rel=0.1)


def test_unmeasured_classes_keep_the_default_and_other_dtypes_are_ignored():
    rows = synthetic_rows(classes=("matmul",))
    rows.append(Measurement("op", "conv", "bfloat16", 1.0, flops=1e9, bytes=1e3))
    fitted = fit_efficiency(rows, PI).efficiency
    default = Efficiency()
    assert fitted.compute["matmul"] == pytest.approx(0.62)
    assert fitted.compute["conv"] == default.compute["conv"] and fitted.compute["attention"] == default.compute["attention"]


def test_fit_from_the_database_costs_ops_like_the_measurements(tmp_path):
    path = tmp_path / "p.db"
    with ProfileDB(path) as db:
        db.record(Run(device="raspberry-pi-4", device_kind="cpu", device_model="pi", memory_bytes=4 << 30, host="pi"),
                  synthetic_rows())
        db.record(Run(device="mystery-box", device_kind="cpu", device_model="?", memory_bytes=1, host="x"),
                  synthetic_rows())
    model = fit_cost_model(path)
    assert isinstance(model, CostModel) and set(model.per_device) == {"raspberry-pi-4"}  # unknown label skipped
    op = Op(name="linear", kind="aten.linear.default", flops=int(2e9), bytes_moved=int(2e9 / 50))
    assert model.op_time_s(op, PI) == pytest.approx(roofline_time(2e9, 2e9 / 50, "matmul"))
    assert model.op_time_s(op, device("jetson-nano")) == CostModel().op_time_s(op, device("jetson-nano"))
    assert fit_devices(path, devices=["raspberry-pi-4"])["raspberry-pi-4"].rows_used["conv"] == 4


def test_plans_use_the_fitted_model_once_there_is_a_database(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path / "p.db"))
    assert fitted_or_default().per_device == {}
    with ProfileDB(tmp_path / "p.db") as db:
        db.record(Run(device="raspberry-pi-4", device_kind="cpu", device_model="pi", memory_bytes=1, host="pi"),
                  synthetic_rows())
    assert fitted_or_default().per_device["raspberry-pi-4"].compute["conv"] == pytest.approx(0.31)


def test_missing_database_is_one_line(tmp_path):
    with pytest.raises(EdgewiseError, match="run `edgewise profile` first"):
        fit_cost_model(tmp_path / "none.db")


def test_ops_that_beat_the_copy_benchmark_are_fitted_by_the_search():
    # Linear layers stream cached weights 6x faster than the DRAM copy benchmark (0.5), which is
    # the only row the read-off step can use for memory; the search must find 3.0 from the ops.
    cached = Efficiency(compute=TRUE.compute, memory=3.0, overhead_s=TRUE.overhead_s)
    rows = [Measurement("overhead", "other", "float32", TRUE.overhead_s, bytes=12)]
    dram = Efficiency(compute=TRUE.compute, memory=0.5, overhead_s=TRUE.overhead_s)
    rows += [Measurement("memory", "memory", "float32", roofline_time(0, 1e8, "other", eff=dram), bytes=1e8)]
    sizes = [2e5 * k for k in range(1, 11)]
    # elementwise ops on small tensors: all overhead, so they cannot show the memory rate
    rows += [Measurement("op", "other", "float32", roofline_time(0, b / 1e3, "other", eff=cached), bytes=b / 1e3)
             for b in sizes]
    rows += [Measurement("op", "matmul", "float32", roofline_time(b / 4, b, "matmul", eff=cached), flops=b / 4, bytes=b)
             for b in sizes]
    fitted = fit_efficiency(rows, PI)
    assert fitted.efficiency.memory == pytest.approx(3.0, rel=0.01)
    assert fitted.median_error < 0.01


def test_measured_op_times_replace_the_roofline_at_batch_one():
    from edgewise.cost.roofline import CostModel
    from edgewise.graph.opgraph import Op
    from edgewise.hardware.cluster import Device
    dev = Device(name="d", peak_flops_per_s={"float32": 1e9}, memory_bytes=1, mem_bandwidth_bytes_per_s=1e9)
    op = Op(name="mm", kind="aten.mm.default", flops=10 ** 9)
    model = CostModel(measured_s={("d", "mm"): 0.123})
    assert model.op_time_s(op, dev) == 0.123
    assert model.op_time_s(op, dev, batch=2) != 0.123          # measured at batch 1 only
    assert CostModel().op_time_s(op, dev) > 1.0                  # the roofline otherwise
