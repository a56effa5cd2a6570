"""write_atomic: a crash mid-write leaves the old file intact and no temporary behind."""
import pytest

from edgewise.errors import EdgewiseError
from edgewise.files import check_writable, write_atomic


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


def test_check_writable_takes_new_folders_and_refuses_files_and_folders(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "out.png", "--gantt")      # write_atomic makes them
    (tmp_path / "f").write_text("x")
    for bad, why in ((tmp_path / "f" / "out.png", "not a writable folder"), (tmp_path, "is a folder")):
        with pytest.raises(EdgewiseError, match=why):
            check_writable(bad, "--gantt")
