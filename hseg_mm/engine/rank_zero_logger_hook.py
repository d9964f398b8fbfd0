"""mmengine's LoggerHook, with the test metrics written by one process, not by every one."""
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook
from mmseg.registry import HOOKS

__all__ = ['RankZeroLoggerHook']


@HOOKS.register_module()
class RankZeroLoggerHook(LoggerHook):
    """`LoggerHook` whose end-of-test log line and metrics file come from rank 0 only.

    mmengine's `LoggerHook.after_test_epoch` dumps `<log_dir>/<timestamp>.json` on every
    rank, and every rank has the same `log_dir`: with several processes they write one
    file at once, and a shorter write over a longer one leaves the longer one's tail
    behind (invalid JSON). The metrics are collected to every rank before this hook, so
    rank 0's copy is the whole result. Everything else is `LoggerHook`'s.
    """

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)
