"""Clusters from YAML: the built-ins load as described, a user's file with units and inline
devices loads, and every kind of mistake is one line naming the field (fuzzed)."""
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster
from edgewise.hardware.cluster_io import builtin_clusters, load_cluster, parse_cluster

PIS = "nodes: [{name: a, device: raspberry-pi-4}, {name: b, device: raspberry-pi-4}]\n"


def test_default_cluster_is_four_pis_and_a_jetson_on_one_wifi_medium():
    c = load_cluster()
    assert c.name == "edge-fleet"
    assert sorted(n.device.name for n in c.nodes) == ["jetson-nano"] + ["raspberry-pi-4"] * 4
    assert len(c.media) == 1 and sorted(c.media[0].members) == sorted(n.name for n in c.nodes)
    ch = c.channel("pi0", "jetson")
    assert ch.shared and ch.bandwidth_bytes_per_s == pytest.approx(80e6 / 8) and ch.latency_s == pytest.approx(3e-3)


@pytest.mark.parametrize("name", ["edge-fleet", "pi-fleet", "pi-jetson-lan", "phones", "slow-link", "fleet-16", "gpu-pair"])
def test_builtin_clusters_load_and_every_pair_can_talk(name):
    c = load_cluster(name)
    assert c.name == name and builtin_clusters()[name]
    names = [n.name for n in c.nodes]
    assert all(c.channel(a, b) is not None for a in names for b in names if a != b)


def test_builtin_sizes_and_links():
    assert len(load_cluster("fleet-16").nodes) == 16
    assert {n.device.name for n in load_cluster("pi-fleet").nodes} == {"raspberry-pi-4"}
    assert load_cluster("slow-link").channel("pi0", "pi1").bandwidth_bytes_per_s == pytest.approx(10e6 / 8)
    assert not load_cluster("pi-fleet").channel("pi0", "pi3").shared


def test_user_file_with_units_inline_device_and_plain_numbers(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(
        "description: my lab\n"
        "nodes:\n"
        "  - {name: pi, device: raspberry-pi-5}\n"
        "  - name: box\n"
        "    device: {kind: gpu, peak_flops_per_s: {float32: 2 TFLOP/s}, memory: 8 GiB, mem_bandwidth: 100 GB/s,\n"
        "             busy_power: {value: 50 W, source: my meter}}\n"
        "links:\n"
        "  - {a: pi, b: box, bandwidth: 1250000, latency: 0.002}\n")
    c = load_cluster(path)
    assert c.name == "lab"                                    # from the file name
    box = c.node("box").device
    assert box.name == "box" and box.kind == "gpu" and box.memory_bytes == 8 * 2 ** 30
    assert box.sources["busy_power_w"] == "my meter" and "lab.yaml" in box.sources["memory_bytes"]
    assert c.channel("pi", "box").bandwidth_bytes_per_s == 1.25e6 and c.channel("box", "pi").latency_s == 0.002


@pytest.mark.parametrize("text, message", [
    ("nodes: [{name: a, device: raspbery-pi-4}]", "nodes.0.device: unknown device 'raspbery-pi-4' (did you mean raspberry-pi-4"),
    ("nodes: [{name: 3, device: raspberry-pi-4}]", "nodes.0.name: Input should be a valid string, got 3"),
    ("nodes: [{name: a, device: 5}]", "nodes.0.device: expected a catalogue device name or an inline device mapping"),
    (PIS + "linkz: []", "unknown key 'linkz' (did you mean links?); valid keys: name, description, nodes, links, media"),
    ("nodes: [{name: a, devise: raspberry-pi-4}]", "nodes.0: unknown key 'devise' (did you mean device?)"),
    (PIS + "links: [{a: a, b: b, bandwidth: -5 Mbit/s}]", "links.0.bandwidth: Input should be greater than 0"),
    (PIS + "links: [{a: a, b: b, bandwidth: 0}]", "links.0.bandwidth: Input should be greater than 0"),
    (PIS + "links: [{a: a, b: b, bandwidth: 5 furlongs}]", "links.0.bandwidth: unknown bandwidth unit 'furlongs'"),
    (PIS + "links: [{a: a, b: b, bandwidth: 1 Mbit/s, latency: -1 ms}]", "links.0.latency: Input should be greater than or equal to 0"),
    (PIS + "links: [{a: a, b: b}]", "links.0.bandwidth: missing (required)"),
    (PIS + "links: [{a: a, b: z, bandwidth: 1}]", "links: unknown device 'z'"),
    (PIS + "links: [{a: a, b: a, bandwidth: 1}]", "links.0: a link joins two different devices"),
    (PIS + "media: [{name: w, members: [a, q], bandwidth: 1 Mbit/s}]", "media.w.members: unknown device 'q'"),
    (PIS + "media: [{name: w, members: a, bandwidth: 1 Mbit/s}]", "media.0.members: Input should be a valid list"),
    ("nodes: [{name: a, device: {peak_flops_per_s: {float32: 1e9}, memory: lots, mem_bandwidth: 1e9}}]",
     "nodes.0.device.memory: expected a size such as '4 GiB'"),
    ("nodes: [{name: a, device: {peak_flops_per_s: {float32: 1e9}, memory: 1 GiB}}]", "nodes.0.device.mem_bandwidth: missing"),
    ("name: x", "nodes: missing (required)"),
    ("nodes: []", "nodes: a cluster needs at least one device"),
    ("nodes: [{name: a, device: raspberry-pi-4}, {name: a, device: jetson-nano}]", "device names must be unique"),
    ("nodes: [a, b\n  x: : y", "not valid YAML at line 2"),
    ("- 1\n- 2", "a cluster file is a YAML mapping with keys name, description, nodes, links, media; got list"),
    ("", "a cluster file is a YAML mapping"),
])
def test_bad_cluster_yaml_is_one_line_naming_the_field(text, message):
    with pytest.raises(EdgewiseError) as e:
        parse_cluster(text, "c.yaml")
    assert str(e.value).startswith("c.yaml: ") and message in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(EdgewiseError, match="cluster file '.*nope.yaml' not found"):
        load_cluster(tmp_path / "nope.yaml")
    with pytest.raises(EdgewiseError, match=r"no built-in cluster \(did you mean edge-fleet\?\); built-in: edge-fleet"):
        load_cluster("edge-flet")
    with pytest.raises(EdgewiseError, match="not a regular file"):
        load_cluster(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00nodes")
    with pytest.raises(EdgewiseError, match="b.yaml"):
        load_cluster(binary)


# Fuzz: YAML-ish documents built from the right vocabulary with wrong values in any place.
_scalar = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.floats(allow_nan=True), st.none(), st.booleans(),
                    st.sampled_from(["raspberry-pi-4", "jetson-nano", "10 Mbit/s", "5 ms", "4 GiB", "a", "b", "-1"]))
_keys = st.sampled_from(["name", "device", "nodes", "links", "media", "a", "b", "bandwidth", "latency", "members",
                         "memory", "mem_bandwidth", "peak_flops_per_s", "float32", "value", "source", "kind", "x"])
_doc = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_doc)
def test_fuzz_loader_returns_a_cluster_or_one_line_error(doc):
    try:
        c = parse_cluster(yaml.safe_dump(doc), "f.yaml")
    except EdgewiseError as e:
        assert str(e).startswith("f.yaml") and "\n" not in str(e)
    else:
        assert isinstance(c, Cluster) and c.nodes


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_loader_on_arbitrary_text(text):
    try:
        parse_cluster(text, "f.yaml")
    except EdgewiseError as e:
        assert "\n" not in str(e)
