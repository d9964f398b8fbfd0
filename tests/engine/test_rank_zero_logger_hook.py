"""RankZeroLoggerHook: the test metrics file is written on rank 0 and on no other rank."""
import json
import logging
import os.path as osp
from types import SimpleNamespace

import pytest

import hseg_mm.engine.rank_zero_logger_hook as module
from hseg_mm.engine import RankZeroLoggerHook


class _LogProcessor:
    def get_log_after_epoch(self, runner, batch_idx, mode, with_non_scalar=False):
        return {'mIoU': 50.0}, 'test mIoU: 50.0'


@pytest.mark.parametrize('main, written', [(True, True), (False, False)])
def test_test_metrics_written_by_rank_zero_only(tmp_path, monkeypatch, main, written):
    monkeypatch.setattr(module, 'is_main_process', lambda: main)
    runner = SimpleNamespace(log_processor=_LogProcessor(), test_dataloader=[0, 1],
                             logger=logging.getLogger('rank_zero_test'), log_dir=str(tmp_path))
    hook = RankZeroLoggerHook()
    hook.json_log_path = 'run.json'  # what LoggerHook.before_run sets from the timestamp
    hook.after_test_epoch(runner)
    path = osp.join(tmp_path, 'run.json')
    assert osp.exists(path) == written
    if written:
        with open(path) as f:
            assert json.load(f) == {'mIoU': 50.0}
