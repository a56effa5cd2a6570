"""One testbed per host: a second user waits for the first and never tears its fleet down mid-run."""
import subprocess
import sys
import time

import pytest

from edgewise.errors import EdgewiseError
from edgewise.testbed import netns


def test_a_held_testbed_makes_a_second_user_wait_then_give_up_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(netns, "LOCK", tmp_path / "testbed.lock")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(tmp_path / 'testbed.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.monotonic()
        with pytest.raises(EdgewiseError, match="another edgewise process") as e:
            netns._hold(wait_s=1.0)
        assert 1.0 <= time.monotonic() - t < 5 and "\n" not in str(e.value)
    finally:
        holder.kill()           # a holder that crashes leaves nothing held
        holder.wait()
    netns._hold(wait_s=5.0)
    netns._let_go()
