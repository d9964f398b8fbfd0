from .allocator import keep_freed_memory
from .machine import cpu_name, describe_machine

__all__ = ['cpu_name', 'describe_machine', 'keep_freed_memory']
