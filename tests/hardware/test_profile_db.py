"""The profile database: measurements come back as stored, a run is all or nothing, the schema
is versioned, and files that are not ours are refused with one line."""
import sqlite3

import pytest

from edgewise.errors import EdgewiseError
from edgewise.hardware.profile_db import SCHEMA_VERSION, Measurement, ProfileDB, Run, default_db_path

RUN = Run(device="local", device_kind="cpu", device_model="cpu x", memory_bytes=1 << 30, host="h", command="edgewise profile")


def test_round_trip_and_filters(tmp_path):
    rows = [Measurement("matmul", "matmul", "float32", 1e-3, flops=2e6, bytes=12e3, shape=((100, 100), (100, 100)), repeats=5),
            Measurement("op", "conv", "float32", 2e-3, flops=1e6, bytes=4e3, model="zoo:m5", op_name="conv1d",
                        op_kind="aten.conv1d.default", extra={"note": 1})]
    with ProfileDB(tmp_path / "p.db") as db:
        run_id = db.record(RUN, rows)
        db.record(Run(device="pi0", device_kind="cpu", device_model="pi", memory_bytes=1, host="t"), rows[:1])
    with ProfileDB(tmp_path / "p.db", readonly=True) as db:
        assert db.schema_version == SCHEMA_VERSION
        assert db.devices() == ["local", "pi0"]
        back = db.measurements(device="local")
        assert [m.op_name for m in back] == ["", "conv1d"]
        assert back[0].shape == ((100, 100), (100, 100)) and back[0].repeats == 5 and back[0].device == "local"
        assert back[1].extra == {"note": 1} and back[1].model == "zoo:m5"
        assert [m.kind for m in db.measurements(kind="op")] == ["op"]
        assert len(db.measurements(run_id=run_id)) == 2
        runs = db.runs("local")
        assert len(runs) == 1 and runs[0].id == run_id and runs[0].command == "edgewise profile"


def test_a_failed_run_leaves_nothing_behind(tmp_path):
    def rows():
        yield Measurement("matmul", "matmul", "float32", 1e-3)
        raise KeyboardInterrupt                      # the user stops profiling half way

    with ProfileDB(tmp_path / "p.db") as db:
        with pytest.raises(KeyboardInterrupt):
            db.record(RUN, rows())
        assert db.runs() == [] and db.measurements() == []


def test_readonly_never_creates_or_writes(tmp_path):
    with pytest.raises(EdgewiseError, match="p.db"):
        ProfileDB(tmp_path / "p.db", readonly=True)
    assert not (tmp_path / "p.db").exists()


def test_an_empty_file_reads_as_an_empty_database(tmp_path):
    (tmp_path / "p.db").write_bytes(b"")
    with ProfileDB(tmp_path / "p.db", readonly=True) as db:
        assert db.runs() == [] and db.devices() == [] and db.measured_device("local") is None
    assert (tmp_path / "p.db").read_bytes() == b""


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "p.db"
    ProfileDB(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(EdgewiseError, match="newer than this edgewise reads"):
        ProfileDB(path)


@pytest.mark.parametrize("content", [b"not a database at all, just text" * 10, "sqlite"])
def test_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "p.db"
    if content == "sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE songs (title TEXT)")
    else:
        path.write_bytes(content)
    with pytest.raises(EdgewiseError, match="not .*edgewise profile database") as e:
        ProfileDB(path)
    assert "\n" not in str(e.value)


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
    monkeypatch.delenv("EDGEWISE_PROFILE_DB")
    assert default_db_path().parts[-3:] == (".cache", "edgewise", "profile.db")
