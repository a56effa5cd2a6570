"""Layer files on disk: round trip through the mapping; truncated or corrupt files are refused."""
import pytest
import torch

from edgewise.errors import EdgewiseError
from edgewise.offload import disk
from edgewise.offload.packing import pack_layer, raw_views, unpack_into


def packed(codec="bitmap"):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(24, 40, generator=g)
    w[w.abs() < 0.7] = 0
    params = {"proj.weight": w, "norm.weight": torch.randn(40, generator=g)}
    return params, *pack_layer(params, codec)


@pytest.mark.parametrize("codec", ["dense", "bitmap"])
def test_round_trip_through_the_file(codec, tmp_path):
    params, buf, layout = packed(codec)
    path = disk.layer_path(tmp_path, 3)
    disk.write_layer(path, buf, layout)
    mapped, layout2 = disk.open_layer(path)
    assert layout2 == layout and torch.equal(mapped, buf)
    out = {k: torch.empty_like(v) for k, v in params.items()}
    unpack_into(mapped, layout2, out)
    assert all(torch.equal(out[k], params[k]) for k in params)
    if codec == "dense":
        assert torch.equal(raw_views(mapped, layout2)["proj.weight"], params["proj.weight"])


def test_truncated_file_is_a_one_line_error(tmp_path):
    _, buf, layout = packed()
    path = disk.layer_path(tmp_path, 0)
    disk.write_layer(path, buf, layout)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(EdgewiseError, match="unreadable") as e:
        disk.open_layer(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("where", ["data", "header", "length"])
def test_corrupt_file_is_a_one_line_error(tmp_path, where):
    _, buf, layout = packed()
    path = disk.layer_path(tmp_path, 0)
    disk.write_layer(path, buf, layout)
    data = bytearray(path.read_bytes())
    if where == "data":
        data[-5] ^= 0xFF
    elif where == "header":
        data[10:20] = b"\x00" * 10
    else:
        data[:8] = (10**12).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(EdgewiseError, match="unreadable"):
        disk.open_layer(path)


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(EdgewiseError, match="unreadable"):
        disk.open_layer(tmp_path / "nope.safetensors")


def test_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    _, buf, layout = packed()
    path = disk.layer_path(tmp_path, 0)
    disk.write_layer(path, buf, layout)
    good = path.read_bytes()

    monkeypatch.setattr(disk, "write_atomic", lambda p, data: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        disk.write_layer(path, buf, layout)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
