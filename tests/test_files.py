"""write_atomic: a crash mid-write leaves the old file intact and no temporary behind."""
import pytest

from edgewise.files import write_atomic


def test_write_atomic_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "out.json"
    write_atomic(p, "first")
    write_atomic(p, b"second")
    assert p.read_bytes() == b"second"
    assert [f.name for f in p.parent.iterdir()] == ["out.json"]


def test_failed_write_keeps_old_content(tmp_path):
    p = tmp_path / "out.txt"
    write_atomic(p, "old")


    with pytest.raises(TypeError):
        write_atomic(p, 12345)  # not str/bytes: the write fails after the temp file exists
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]
