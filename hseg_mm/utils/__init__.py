from .machine import cpu_name, describe_machine

__all__ = ['cpu_name', 'describe_machine']
