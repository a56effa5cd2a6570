"""Allocator settings: with steady_allocations, memory freed after a pass is reused by the next
one instead of being handed back to the OS and faulted in again."""
import subprocess
import sys

import pytest

# Each pass holds ten 1 MiB tensors at once, writes them and frees them all, as a forward pass
# does with its activations; prints the page faults of passes 3 to 10.
PASSES = """
import resource, sys, torch
if sys.argv[1] == "steady":
    from edgewise.proc import steady_allocations
    steady_allocations()
def one_pass():
    held = [torch.ones(1 << 18) for _ in range(10)]
    del held
for _ in range(2):
    one_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    one_pass()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PASSES, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_allocations_reuse_freed_activations_without_page_faults():
    pages_per_pass = 10 * (1 << 20) // 4096
    assert faults("default") > 4 * pages_per_pass      # glibc trims the freed heap and faults it in again
    assert faults("steady") < pages_per_pass // 4
