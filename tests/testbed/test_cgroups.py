"""The testbed's cgroups in either hierarchy, written into a stand-in for /sys/fs/cgroup (the
real one is exercised by test_netns.py on whichever this host has)."""
from edgewise.testbed import cgroups
from edgewise.testbed.cgroups import DeviceCgroup, Hierarchy, host_hierarchy

PI = DeviceCgroup(name="d0", quota_us=1430, period_us=5000, cpus=(1,))
JETSON = DeviceCgroup(name="d1", quota_us=8570, period_us=10000, cpus=(0, 1))


def test_v1_is_found_by_its_controller_folders_and_v2_by_the_controllers_it_offers(tmp_path):
    assert host_hierarchy(tmp_path) is None
    (tmp_path / "cgroup.controllers").write_text("cpu io memory\n")      # v2 without cpuset
    assert host_hierarchy(tmp_path) is None
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    assert host_hierarchy(tmp_path) == Hierarchy(2, tmp_path)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpuset").mkdir()
    assert host_hierarchy(tmp_path) == Hierarchy(1, tmp_path)


def test_v2_enables_the_controllers_for_the_children_and_sets_quota_period_and_cores(tmp_path):
    cg = Hierarchy(2, tmp_path)
    cg.make([PI, JETSON])
    top = tmp_path / cgroups.TOP
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +cpuset"
    assert (top / "cgroup.subtree_control").read_text() == "+cpu +cpuset"
    assert (top / "d0" / "cpu.max").read_text() == "1430 5000"
    assert (top / "d1" / "cpuset.cpus").read_text() == "0,1"
    assert cg.procs_files("d1") == [top / "d1" / "cgroup.procs"]


def test_v1_sets_each_controller_in_its_own_hierarchy(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpuset").mkdir()
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    cg = Hierarchy(1, tmp_path)
    cg.make([PI])
    cpu, cpuset = cg.tops
    assert (cpu / "d0" / "cpu.cfs_quota_us").read_text() == "1430"
    assert (cpu / "d0" / "cpu.cfs_period_us").read_text() == "5000"
    assert (cpuset / "cpuset.cpus").read_text() == "0-1"       # the parent's, so children may use them
    assert (cpuset / "d0" / "cpuset.cpus").read_text() == "1"
    assert (cpuset / "d0" / "cpuset.mems").read_text() == "0"
    assert cg.procs_files("d0") == [cpu / "d0" / "tasks", cpuset / "d0" / "tasks"]


def test_teardown_finds_every_device_cgroup_with_the_pids_left_in_it(tmp_path):
    cg = Hierarchy(2, tmp_path)
    assert cg.members() == []
    cg.make([PI, JETSON])
    (tmp_path / cgroups.TOP / "d0" / "cgroup.procs").write_text("12\n34\n")
    (tmp_path / cgroups.TOP / "d1" / "cgroup.procs").write_text("")
    assert cg.members() == [(tmp_path / cgroups.TOP / "d0", [12, 34]), (tmp_path / cgroups.TOP / "d1", [])]
