"""`--launcher slurm` without CUDA: the process group comes from srun's variables."""
import os

import pytest

from hseg_mm.engine.launch import _set_dist_env_from_slurm, first_slurm_host


@pytest.mark.parametrize('nodelist, first', [
    ('vm', 'vm'),
    ('node07', 'node07'),
    ('node[07-09,12]', 'node07'),
    ('node[12,07-09]', 'node12'),
    ('gpu[003-004],cpu1', 'gpu003'),
    ('cpu1,gpu[003-004]', 'cpu1'),
    ('rack[1-2]-n[01-04]', 'rack1-n01'),
    ('a.example.org', 'a.example.org'),
])
def test_first_slurm_host_as_scontrol(nodelist, first):
    assert first_slurm_host(nodelist) == first


def _clear(monkeypatch):
    # setenv first: monkeypatch then restores the variables the code under test sets
    for var in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
                'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID', 'SLURM_NODELIST'):
        monkeypatch.setenv(var, '')
        monkeypatch.delenv(var)


def test_dist_env_from_slurm_as_mmengine(monkeypatch):
    _clear(monkeypatch)
    for var, value in dict(SLURM_PROCID='5', SLURM_NTASKS='8', SLURM_LOCALID='1',
                           SLURM_NODELIST='node[03-06]').items():
        monkeypatch.setenv(var, value)
    _set_dist_env_from_slurm()
    assert [os.environ[v] for v in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                    'MASTER_PORT')] == ['5', '8', '1', 'node03', '29500']
    # a MASTER_ADDR or MASTER_PORT given by the user is kept
    monkeypatch.setenv('MASTER_ADDR', '10.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '23456')
    _set_dist_env_from_slurm()
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('10.0.0.1', '23456')


def test_slurm_launcher_outside_srun_says_so(monkeypatch):
    _clear(monkeypatch)
    with pytest.raises(SystemExit, match='not started by srun'):
        _set_dist_env_from_slurm()

