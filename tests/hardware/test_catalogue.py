"""The device catalogue: the devices users expect are there with every figure sourced, unknown
names get close matches, and what `edgewise profile` measured becomes the device `local`."""
import pytest

from edgewise.errors import EdgewiseError
from edgewise.hardware.catalogue import builtin_devices, catalogue, device, parse_catalogue
from edgewise.hardware.profile_db import Measurement, ProfileDB, Run

EXPECTED = ["raspberry-pi-3b", "raspberry-pi-4", "raspberry-pi-5", "jetson-nano", "jetson-tx2",
            "jetson-xavier-nx", "jetson-orin-agx", "snapdragon-778g-cpu", "snapdragon-778g-gpu",
            "intel-n100", "h100-sxm", "h200-sxm"]


def test_catalogue_has_the_devices_the_issue_names():
    assert set(EXPECTED) <= set(builtin_devices())


@pytest.mark.parametrize("name", EXPECTED)
def test_every_figure_is_positive_and_has_a_source(name):
    d = builtin_devices()[name]
    figures = [f"peak_flops_per_s.{k}" for k in d.peak_flops_per_s] + [
        "memory_bytes", "mem_bandwidth_bytes_per_s", "idle_power_w", "busy_power_w"]
    assert sorted(d.sources) == sorted(figures)
    assert all(len(d.sources[f]) > 10 for f in figures)
    assert d.peak("float32") > 0 and d.memory_bytes > 0 and d.mem_bandwidth_bytes_per_s > 0
    assert 0 < d.idle_power_w < d.busy_power_w
    assert d.summary


def test_known_vendor_figures():
    assert device("jetson-nano").peak("float16") == pytest.approx(472e9)
    assert device("h100-sxm").mem_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert device("h200-sxm").memory_bytes == 141 * 10 ** 9
    assert device("raspberry-pi-4").memory_bytes == 4 * 2 ** 30
    assert device("raspberry-pi-4").peak("bfloat16") == device("raspberry-pi-4").peak("float32")  # falls back


def test_unknown_device_suggests_close_names():
    with pytest.raises(EdgewiseError, match="did you mean raspberry-pi-4"):
        device("raspbery-pi-4")


def test_catalogue_entry_without_source_is_rejected():
    text = "pi:\n  peak_flops_per_s: {float32: {value: 1 GFLOP/s, source: x}}\n  memory: 1 GiB\n" \
           "  mem_bandwidth: {value: 1 GB/s, source: y}\n  idle_power: {value: 1 W, source: z}\n" \
           "  busy_power: {value: 2 W, source: w}\n"
    with pytest.raises(EdgewiseError, match="pi: figure memory_bytes has no source"):
        parse_catalogue(text, "cat.yaml")


@pytest.mark.parametrize("text, message", [
    ("pi: {kind: tpu}", "pi: kind"), ("- a", "a YAML mapping"), ("pi: [", "not valid YAML"),
    ("pi: {colour: red}", "unknown key 'colour'"),
])
def test_bad_catalogue_is_one_line(text, message):
    with pytest.raises(EdgewiseError, match=message) as e:
        parse_catalogue(text, "cat.yaml")
    assert "\n" not in str(e.value)


def _record_local(path, gflops=10.0, gbytes=5.0):
    run = Run(device="local", device_kind="cpu", device_model="test cpu", memory_bytes=8 << 30, host="h")
    rows = [Measurement("matmul", "matmul", "float32", time_s=1.0, flops=gflops * 1e9, bytes=1.0),
            Measurement("matmul", "matmul", "float32", time_s=1.0, flops=gflops / 2 * 1e9, bytes=1.0),
            Measurement("memory", "memory", "float32", time_s=1.0, bytes=gbytes * 1e9)]
    with ProfileDB(path) as db:
        db.record(run, rows)


def test_local_is_what_was_measured(tmp_path, monkeypatch):
    path = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(path))
    with pytest.raises(EdgewiseError, match="edgewise profile"):
        device("local")
    _record_local(path)
    local = device("local")
    assert local.peak("float32") == pytest.approx(10e9)            # the best run, not the mean
    assert local.mem_bandwidth_bytes_per_s == pytest.approx(5e9)
    assert local.memory_bytes == 8 << 30 and "measured" in local.sources["peak_flops_per_s.float32"]
    assert "local" in catalogue()
    _record_local(path, gflops=20.0)                                 # a later profile replaces it
    assert device("local").peak("float32") == pytest.approx(20e9)
