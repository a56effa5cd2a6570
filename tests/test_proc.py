"""Allocator settings: with steady_allocations, a stage-sized block comes from the heap, where a
freed one is kept for the next input, rather than from pages mapped for it and unmapped after."""
import subprocess
import sys

import pytest

# A fresh process asks glibc for 4 MiB (an activation's size) and prints how many blocks glibc
# then holds as mappings of their own (mallinfo2's hblks) beyond those it held before.
MAPPED = """
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
if sys.argv[1] == "steady":
    from edgewise.proc import steady_allocations
    steady_allocations()
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(libc.mallinfo2().hblks - before)
"""


def mapped_blocks(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", MAPPED, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_allocations_serve_activation_sized_blocks_from_the_heap():
    assert mapped_blocks("default") == 1    # over glibc's first threshold (128 KiB): a mapping of its own
    assert mapped_blocks("steady") == 0
