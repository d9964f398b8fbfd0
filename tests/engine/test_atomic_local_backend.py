"""Checkpoint writes are whole or absent: a failure mid-write (a full disk, a kill)
leaves the previous file as it was and no partial one."""
import errno
import os

import pytest
from mmengine.fileio import get_file_backend

from hseg_mm.engine.atomic_local_backend import ATOMIC_BACKEND_ARGS, AtomicLocalBackend


def test_put_replaces_whole_files(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=ATOMIC_BACKEND_ARGS)
    assert isinstance(backend, AtomicLocalBackend)
    target = tmp_path / 'sub' / 'iter_2.pth'
    backend.put(b'first', str(target))
    backend.put(b'second', str(target))
    backend.put_text('iter_2.pth', str(tmp_path / 'last_checkpoint'))
    assert target.read_bytes() == b'second'
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_2.pth'
    assert sorted(os.listdir(tmp_path / 'sub')) == ['iter_2.pth']  # no temporary left


def test_a_full_disk_leaves_the_previous_file(tmp_path, monkeypatch):
    backend = AtomicLocalBackend()
    target = tmp_path / 'last_checkpoint'
    backend.put_text('iter_2.pth', str(target))

    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', no_space)  # the data never reaches the disk
    with pytest.raises(OSError, match='No space left'):
        backend.put_text('iter_4.pth', str(target))
    assert target.read_text() == 'iter_2.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']


def test_a_killed_writers_half_file_is_cleared_by_the_next_write(tmp_path):
    (tmp_path / '.iter_4.pth.tmp-12345').write_bytes(b'half')
    AtomicLocalBackend().put(b'whole', str(tmp_path / 'iter_4.pth'))
    assert os.listdir(tmp_path) == ['iter_4.pth']
