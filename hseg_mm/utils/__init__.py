from .allocator import keep_freed_memory
from .machine import cpu_name, describe_machine
from .registry import config_class
from .tree_cache import tree_cached

__all__ = ['config_class', 'cpu_name', 'describe_machine', 'keep_freed_memory',
           'tree_cached']
