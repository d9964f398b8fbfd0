import ctypes
import sys

import pytest
import torch

from hseg_mm.utils import allocator
from hseg_mm.utils.allocator import keep_freed_memory


class _MallInfo2(ctypes.Structure):
    # glibc >= 2.33, malloc.h: ten size_t counters
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]


def _mmapped_bytes() -> int:
    libc = ctypes.CDLL('libc.so.6')
    if not hasattr(libc, 'mallinfo2'):
        pytest.skip('no glibc >= 2.33 mallinfo2 here')
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblkhd


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_a_large_tensor_comes_from_the_heap_not_from_mmap(monkeypatch):
    for name in allocator._USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert keep_freed_memory()
    # 64 MiB is above glibc's default mmap threshold (32 MiB at most), which would
    # map it on its own (hblkhd += 64 MiB) and unmap it on free; now the heap serves it.
    before = _mmapped_bytes()
    block = torch.empty(64 << 20, dtype=torch.uint8)
    block.fill_(1)
    assert _mmapped_bytes() - before < 64 << 20
    del block


def test_the_users_own_malloc_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv('MALLOC_TRIM_THRESHOLD_', '0')
    assert not keep_freed_memory()


def test_nothing_is_done_off_linux(monkeypatch):
    monkeypatch.setattr(allocator.sys, 'platform', 'darwin')
    assert not keep_freed_memory()
