"""tools/slurm_train.sh and tools/slurm_test.sh.

Two kinds of test:
- the srun command line the scripts build, with stand-ins for `sinfo` and `srun` on
  PATH (GPU and CPU partitions; runs everywhere, in milliseconds);
- the real thing: a one-node Slurm (munged, slurmctld, slurmd started here under a
  temporary directory, on free ports) runs 2-task training on configs/demo_cpu.py, then
  2-task testing of the checkpoint, whose per-level metrics must equal those of one
  `tools/test.py` process. It needs root and Debian's `slurm-wlm` and `munge`; when they
  are missing it installs them with apt-get only if HSEG_SLURM_APT=1 (`make test-slurm`
  and `.ci/run` set it), and otherwise skips saying why. About 30 s on 2 cores, plus
  the apt-get install when it runs.
"""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import pytest

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from tool_helpers import demo_options, free_port

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')
PARTITION = 'cpu'
SLURM_PROGRAMS = ('munged', 'munge', 'slurmctld', 'slurmd', 'srun', 'sinfo', 'squeue',
                  'scancel')


# ---------------------------------------------------------------- srun command line

def _stub_bin(tmp_path, gres: Optional[str]) -> str:
    """`sinfo` printing `gres` (or failing when None) and `srun` printing its argv."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    sinfo = 'exit 1' if gres is None else f"echo '{gres}'"
    scripts = {'sinfo': sinfo,
               'srun': 'printf "%s\\n" "$@"; echo "OMP_NUM_THREADS=${OMP_NUM_THREADS:-}"'}
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f'#!/usr/bin/env bash\n{body}\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(bin_dir)


def _srun_args(tmp_path, gres: Optional[str], script: str, args: List[str],
               **env: str) -> List[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS',
                            'OMP_NUM_THREADS')}
    environ.update(env, PATH=_stub_bin(tmp_path, gres) + os.pathsep + os.environ['PATH'])
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', script), *args], env=environ,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_gpu_partition_asks_for_gpus_as_mmseg(tmp_path):
    out = _srun_args(tmp_path, 'gpu:8(S:0-1)', 'slurm_train.sh',
                     ['gpu', 'job', 'cfg.py', '--work-dir', 'w d'],
                     GPUS='8', SRUN_ARGS='--time=10 --qos=high')
    assert out[:7] == ['--partition=gpu', '--job-name=job', '--gres=gpu:4', '--ntasks=8',
                       '--ntasks-per-node=4', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert out[7:9] == ['--time=10', '--qos=high']  # SRUN_ARGS split into options
    assert out[10:] == ['-u', osp.join(ROOT, 'tools', 'train.py'), 'cfg.py', '--work-dir',
                        'w d', '--launcher', 'slurm', 'OMP_NUM_THREADS=']  # GPU: OMP left alone


def test_partition_without_gpus_runs_cpu_tasks(tmp_path):
    out = _srun_args(tmp_path, '(null)', 'slurm_test.sh',
                     ['cpu', 'job', 'cfg.py', 'ckpt.pth', '--eval', 'mIoU'],
                     GPUS='2', CPUS_PER_TASK='3')
    assert not any(a.startswith('--gres') for a in out)
    assert '--ntasks=2' in out and '--ntasks-per-node=2' in out  # not the 4 per node
    assert '--cpus-per-task=3' in out and out[-1] == 'OMP_NUM_THREADS=3'
    assert out[-8:-1] == [osp.join(ROOT, 'tools', 'test.py'), 'cfg.py', 'ckpt.pth',
                          '--eval', 'mIoU', '--launcher', 'slurm']


def test_without_sinfo_answer_gpus_are_requested(tmp_path):
    out = _srun_args(tmp_path, None, 'slurm_train.sh', ['p', 'job', 'cfg.py'])
    assert '--gres=gpu:4' in out


def test_missing_arguments_print_usage(tmp_path):
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', 'slurm_test.sh'), 'p', 'j', 'c'],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and 'CHECKPOINT' in proc.stderr


# ---------------------------------------------------------------- a real Slurm

def _tail(path: str, chars: int = 1500) -> str:
    try:
        with open(path, errors='replace') as f:
            return f.read()[-chars:]
    except OSError:
        return ''


def _install_slurm() -> Optional[str]:
    """None when Slurm and munge are there (installed now if allowed), else the reason."""
    if all(shutil.which(p) for p in SLURM_PROGRAMS):
        return None
    if os.environ.get('HSEG_SLURM_APT') != '1':
        return ('Slurm/munge not installed; HSEG_SLURM_APT=1 (as `make test-slurm` and '
                '.ci/run set) lets this test apt-get install slurm-wlm munge')
    if os.geteuid() != 0 or not shutil.which('apt-get'):
        return 'installing Slurm needs root and apt-get'
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for cmd, limit in ((['apt-get', 'update'], 120),
                       (['apt-get', 'install', '-y', '--no-install-recommends',
                         'slurm-wlm', 'munge'], 240)):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=limit)
        except subprocess.TimeoutExpired:
            return f'{" ".join(cmd)} took more than {limit} s'
        if proc.returncode != 0:
            return f'{" ".join(cmd)} failed: {proc.stderr[-500:]}'
    missing = [p for p in SLURM_PROGRAMS if not shutil.which(p)]
    return f'still missing after apt-get: {missing}' if missing else None


class OneNodeSlurm:
    """munged + slurmctld + slurmd for one node, all state under `self.dir`."""

    def __init__(self):
        # short path: munge's unix socket must fit in 108 characters
        self.dir = tempfile.mkdtemp(prefix='hseg-slurm-')
        os.chmod(self.dir, 0o755)  # munged wants the socket reachable by all
        self.procs: List[subprocess.Popen] = []
        self.conf = osp.join(self.dir, 'slurm.conf')
        short = socket.gethostname().split('.')[0]
        try:  # the tasks reach the first node of the allocation by its name
            socket.gethostbyname(short)
            self.node = short
        except OSError:
            self.node = 'localhost'
        # not the variables of a Slurm job this suite may itself run in
        self.env = {k: v for k, v in os.environ.items() if not k.startswith('SLURM_')}
        self.env['SLURM_CONF'] = self.conf

    def _start(self, name: str, cmd: List[str]) -> None:
        log = open(osp.join(self.dir, f'{name}.out'), 'w')
        # own session: the finalizer stops the daemon and what it forked by its PID
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env, start_new_session=True))
        log.close()

    def _logs(self) -> str:
        return '\n'.join(f'--- {n}\n{_tail(osp.join(self.dir, n + ".out"))}'
                         for n in ('munged', 'slurmctld', 'slurmd'))

    def _wait(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f'{dead} exited while waiting for {what}\n{self._logs()}')
            time.sleep(0.5)
        raise RuntimeError(f'no {what} after {timeout} s\n{self._logs()}')

    def _ok(self, cmd: List[str], expect: Optional[str] = None) -> bool:
        try:
            proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                  timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0 and (expect is None or proc.stdout.strip() == expect)

    def start(self) -> None:
        d = self.dir
        munge_dir = osp.join(d, 'munge')
        os.makedirs(munge_dir, mode=0o755)
        for sub in ('state', 'spool'):
            os.makedirs(osp.join(d, sub))
        key = osp.join(munge_dir, 'munge.key')
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), 'wb') as f:
            f.write(os.urandom(1024))
        socket_path = osp.join(munge_dir, 'munge.sock')
        self._start('munged', ['munged', '--foreground', '--force',
                               f'--socket={socket_path}', f'--key-file={key}',
                               f'--pid-file={munge_dir}/munged.pid',
                               f'--seed-file={munge_dir}/munged.seed'])
        self._wait('munge credential', lambda: self._ok(
            ['bash', '-c', f'munge -n -S {socket_path} | unmunge -S {socket_path}']), 20)

        # No cgroups (containers rarely allow them): proctrack/linuxproc, task/none.
        # config_overrides: the node is what this file says, whatever the hardware.
        with open(self.conf, 'w') as f:
            f.write(f"""\
ClusterName=hsegtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
NodeName={self.node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=10 State=UP
""")
        self._start('slurmctld', ['slurmctld', '-D', '-f', self.conf])
        self._start('slurmd', ['slurmd', '-D', '-f', self.conf, '-N', self.node])
        self._wait('idle node in sinfo', lambda: self._ok(
            ['sinfo', '--noheader', f'--nodes={self.node}', '--format=%T'], 'idle'), 60)

    def stop(self) -> None:
        """Cancel what runs, stop every daemon started here (by PID), remove the files."""
        if any(p.poll() is None for p in self.procs):
            self._ok(['scancel', '--user', str(os.getuid())])
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not self._ok(['squeue', '--noheader'], ''):
                time.sleep(0.5)
        for proc in reversed(self.procs):  # slurmd, slurmctld, then munged
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)
            try:  # whatever the daemon forked into its session (slurmscriptd)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope='module')
def slurm(request) -> OneNodeSlurm:
    if os.geteuid() != 0:
        pytest.skip('a private Slurm (slurmd, munged) needs root')
    reason = _install_slurm()
    if reason:
        pytest.skip(reason)
    cluster = OneNodeSlurm()
    request.addfinalizer(cluster.stop)  # runs even if start() fails half-way
    try:
        cluster.start()
    except (OSError, RuntimeError) as e:
        pytest.skip(f'Slurm did not start here: {e}')
    return cluster


def _run(cmd: List[str], env: Dict[str, str], timeout: float) -> str:
    """Run in its own session; on timeout kill the whole group (bash, srun, tasks)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f'{cmd} ran past {timeout} s\n{out[-3000:]}')
    assert proc.returncode == 0, f'{cmd}\n{out[-4000:]}'
    return out


def _options(data_root: str) -> List[str]:
    # near the random init the predictions cover every level's classes; after 2 steps at
    # the demo's lr they are all background, a weak comparison
    return demo_options(data_root, 2) + ['optim_wrapper.optimizer.lr=1e-6']


def _test_metrics(work_dir: str) -> Dict[str, float]:
    """The metrics RankZeroLoggerHook dumps after testing (work_dir/<time>/<time>.json)."""
    paths = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(paths) == 1, paths
    with open(paths[0]) as f:
        metrics = json.load(f)
    return {k: v for k, v in metrics.items() if k not in ('time', 'data_time', 'step')}


def test_slurm_train_then_test_matches_one_process(slurm, tmp_path):
    data_root = str(tmp_path / 'people')
    # 3 val images over 2 tasks: the sampler pads one; the merged metric must not count it
    make_synthetic_people(data_root, num_train=4, num_val=3, size=(128, 128), seed=1)
    options = _options(data_root)
    env = dict(slurm.env, PYTHONPATH=ROOT, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1',
               MASTER_PORT=str(free_port()), SRUN_ARGS='--time=5')
    for var in ('MASTER_ADDR', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        env.pop(var, None)

    work = str(tmp_path / 'train')
    log = _run(['bash', 'tools/slurm_train.sh', PARTITION, 'hseg-train', CONFIG,
                '--work-dir', work, '--cfg-options', *options], env, timeout=180)
    assert 'partition cpu has no GPUs' in log and '--gres' not in log
    assert 'Distributed launcher: slurm' in log and 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    _run(['bash', 'tools/slurm_test.sh', PARTITION, 'hseg-test', CONFIG, ckpt,
          '--work-dir', str(tmp_path / 'slurm_test'), '--cfg-options', *options],
         env, timeout=150)
    _run([sys.executable, 'tools/test.py', CONFIG, ckpt,
          '--work-dir', str(tmp_path / 'one_test'), '--cfg-options', *options],
         dict(env, OMP_NUM_THREADS='2'), timeout=150)
    two, one = _test_metrics(str(tmp_path / 'slurm_test')), _test_metrics(
        str(tmp_path / 'one_test'))
    assert any(k.startswith('mIoU_L') for k in one), one
    assert two == pytest.approx(one, abs=1e-6)
