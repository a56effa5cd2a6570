"""Testbed arithmetic: quotas follow catalogue speed, and one dilation factor covers overload."""
import pytest

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster, Device, Node
from edgewise.testbed.layout import NETWORK, plan_layout


def dev(name, flops):
    return Device(name=name, peak_flops_per_s={"float32": flops}, memory_bytes=1 << 30,
                  mem_bandwidth_bytes_per_s=1e9)


def cluster(*flops):
    return Cluster(name="c", nodes=[Node(name=f"n{i}", device=dev(f"d{i}", f)) for i, f in enumerate(flops)])


def test_small_fleet_runs_at_its_own_speed():
    lay = plan_layout(cluster(1e10, 2e10), host_core_flops=5e10, host_cores=2)
    assert lay.dilation == 1.0
    assert [s.cpu_quota_cores for s in lay.slots] == pytest.approx([0.2, 0.4])


def test_overloaded_fleet_is_dilated_by_one_factor_and_keeps_ratios():
    lay = plan_layout(cluster(5e10, 5e10, 1e11), host_core_flops=5e10, host_cores=2, headroom=0.9)
    assert lay.dilation == pytest.approx(4 / 1.8)
    quotas = [s.cpu_quota_cores for s in lay.slots]
    assert sum(quotas) == pytest.approx(1.8)
    assert quotas[2] == pytest.approx(2 * quotas[0])


def test_pinning_never_oversubscribes_a_core():
    lay = plan_layout(cluster(*[1e10] * 7), host_core_flops=2e10, host_cores=2, headroom=0.9)
    load = {0: 0.0, 1: 0.0}
    for s in lay.slots:
        for c in s.cpus:
            load[c] += s.cpu_quota_cores / len(s.cpus)
    assert max(load.values()) <= 0.9 + 1e-9


def test_addresses_are_inside_the_benchmark_range_and_unique():
    lay = plan_layout(cluster(*[1e9] * 20), host_core_flops=1e10, host_cores=2)
    addrs = [s.address for s in lay.slots]
    assert len(set(addrs)) == 20
    import ipaddress
    assert all(ipaddress.ip_address(a) in NETWORK for a in addrs)


def test_bad_host_figures_are_one_line_errors():
    with pytest.raises(EdgewiseError, match="positive"):
        plan_layout(cluster(1e9), host_core_flops=0, host_cores=2)


def test_a_device_bigger_than_a_core_share_gets_its_cores_to_itself():
    # one device wanting ~a core next to small ones: sharing a core with them would leave its one
    # thread only what they leave, so it is dilated until it fits a core of its own
    lay = plan_layout(cluster(1e10, 1e10, 1e10, 1e10, 5e10), host_core_flops=5e10, host_cores=2, headroom=0.9)
    big = lay.slots[-1]
    assert big.cpu_quota_cores <= 0.9 + 1e-9 and len(big.cpus) == 1
    assert all(big.cpus[0] not in s.cpus for s in lay.slots[:-1])
    # a device wanting more than a core gets whole cores, and as many threads
    wide = plan_layout(cluster(8e10), host_core_flops=5e10, host_cores=4, headroom=0.9)   # 1.6 cores
    assert len(wide.slots[0].cpus) == wide.slots[0].threads == 2
