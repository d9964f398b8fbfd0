"""The run: the config's one tree handed to every part, launch set-up, checks."""
from .atomic_local_backend import AtomicLocalBackend
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper, cpu_has_native
from .hierarchical_runner import HierarchicalRunner
from .hierarchy_check_hook import HierarchyCheckHook
from .hierarchy_config import ConfigError, apply_hierarchy, check_checkpoint_tree
from .launch import load_config, prepare_runtime
from .non_finite_guard_hook import (NonFiniteError, NonFiniteGuardHook, all_finite,
                                    find_non_finite)
from .param_groups import plain_param_groups
from .random_state_hook import RandomStateHook
from .rank_zero_logger_hook import RankZeroLoggerHook
from .riemannian_optim import RiemannianAdam, RiemannianAdamW, RiemannianSGD

__all__ = ['AtomicLocalBackend', 'CPUAmpOptimWrapper', 'HierarchicalRunner', 'RandomStateHook',
           'RankZeroLoggerHook', 'cpu_has_native',
           'HierarchyCheckHook', 'ConfigError',
           'apply_hierarchy', 'check_checkpoint_tree', 'load_config', 'prepare_runtime',
           'NonFiniteError', 'NonFiniteGuardHook', 'all_finite', 'find_non_finite',
           'plain_param_groups',
           'RiemannianSGD', 'RiemannianAdam', 'RiemannianAdamW']
