"""hseg_mm: hierarchical semantic segmentation for MMSegmentation 1.x.

Importing the package applies the version shims and registers every module, so a
config needs only `custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)`.
"""
from . import compat

compat.apply()

from .hierarchy import ClassHierarchy, HierarchyError  # noqa: E402
from . import datasets, engine, evaluation, models, visualization  # noqa: F401,E402

__version__ = '0.1.0'
__all__ = ['ClassHierarchy', 'HierarchyError', '__version__']
