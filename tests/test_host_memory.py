"""Freed host memory is kept for reuse (trainables/host_memory.py): after the setting, a block the size of the
2-D experiment's activations comes from the heap, not from fresh mmap pages, and freeing it keeps it there."""

import ctypes
import ctypes.util
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, ctypes.util, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"))

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    from trainables.host_memory import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
import torch
before = libc.mallinfo2().hblkhd
x = torch.empty(1024, 128 * 4)  # 2 MiB: above glibc's default threshold, below ours
x.fill_(1.0)
print(libc.mallinfo2().hblkhd - before)
"""


def mapped_bytes_of_one_block(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(
    not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"), reason="needs glibc >= 2.33 (mallinfo2)"
)
def test_a_block_comes_from_the_heap_once_freed_memory_is_kept():
    assert mapped_bytes_of_one_block("default") >= 2 * 2**20  # glibc maps it afresh by default
    assert mapped_bytes_of_one_block("keep") == 0
