from .metrics import HierarchicalIoUMetric  # noqa: F401

__all__ = ['HierarchicalIoUMetric']
