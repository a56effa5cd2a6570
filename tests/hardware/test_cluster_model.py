"""Cluster invariants users rely on: names unique, links name real devices, channel lookup."""
import pytest
from pydantic import ValidationError

from edgewise.hardware.cluster import Cluster, Device, Link, Medium, Node

PI = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=4 << 30,
            mem_bandwidth_bytes_per_s=4e9)


def nodes(*names):
    return [Node(name=n, device=PI) for n in names]


def test_link_beats_medium_and_medium_is_shared():
    c = Cluster(name="c", nodes=nodes("a", "b", "c"),
                links=[Link(a="a", b="b", bandwidth_bytes_per_s=1e8, latency_s=1e-3)],
                media=[Medium(name="wifi", members=["a", "b", "c"], bandwidth_bytes_per_s=1e7)])
    assert c.channel("a", "b").name == "a<->b" and not c.channel("a", "b").shared
    assert c.channel("b", "a").bandwidth_bytes_per_s == 1e8
    assert c.channel("a", "c").name == "wifi" and c.channel("a", "c").shared
    assert c.channel("a", "a") is None


def test_disconnected_pair_has_no_channel():
    c = Cluster(name="c", nodes=nodes("a", "b"))
    assert c.channel("a", "b") is None


@pytest.mark.parametrize("kwargs, field", [
    (dict(nodes=[]), "nodes"),
    (dict(nodes=nodes("a", "a")), "unique"),
    (dict(nodes=nodes("a"), links=[Link(a="a", b="z", bandwidth_bytes_per_s=1.0)]), "'z'"),
    (dict(nodes=nodes("a"), media=[Medium(name="m", members=["q"], bandwidth_bytes_per_s=1.0)]), "'q'"),
])
def test_bad_cluster_names_the_field(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        Cluster(name="c", **kwargs)


def test_negative_bandwidth_rejected():
    with pytest.raises(ValidationError):
        Link(a="a", b="b", bandwidth_bytes_per_s=-1)
