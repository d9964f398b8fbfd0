"""mmengine's Runner, given the config's one tree before it builds anything."""
import copy
from typing import Union

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from .hierarchy_check_hook import HierarchyCheckHook
from .hierarchy_config import apply_hierarchy


@RUNNERS.register_module()
class HierarchicalRunner(Runner):
    """A Runner whose config states its class tree once, at the top level.

    Selected by `runner_type = 'HierarchicalRunner'` (configs/_base_/default_runtime.py):
    `RUNNERS.build(cfg)`, as mmseg's and hseg_mm's tools/train.py and test.py do,
    calls `from_cfg`, which runs `apply_hierarchy` (the tree into every part, the
    data paths checked) before the config is dumped or the model built. It
    registers `HierarchyCheckHook` unless the config lists one, with
    `allow_other_tree` from the config's top-level key of that name.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict, dict]) -> 'HierarchicalRunner':
        cfg = copy.deepcopy(cfg)
        if not isinstance(cfg, Config):
            cfg = Config(cfg)
        apply_hierarchy(cfg)
        return super().from_cfg(cfg)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not any(isinstance(hook, HierarchyCheckHook) for hook in self.hooks):
            self.register_hook(HierarchyCheckHook(
                allow_other_tree=bool(self.cfg.get('allow_other_tree', False))))
        self.checkpoint_being_loaded = None

    def load_checkpoint(self, filename: str, *args, **kwargs):
        # named in HierarchyCheckHook's message; resume() loads through here too
        self.checkpoint_being_loaded = filename
        try:
            return super().load_checkpoint(filename, *args, **kwargs)
        finally:
            self.checkpoint_being_loaded = None
