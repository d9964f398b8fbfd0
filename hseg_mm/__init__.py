"""hseg_mm: hierarchical semantic segmentation for MMSegmentation 1.x.

Importing the package applies the version shims and registers every module, so a
config needs only `custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)`.
"""
import os

# albumentations 2.x (imported by mmseg.datasets) asks PyPI for a newer version in every
# process, a 2 s timeout on an offline node; users can still set it to 0.
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

from . import compat  # noqa: E402

compat.apply()

from .hierarchy import ClassHierarchy, HierarchyError  # noqa: E402
from . import datasets, engine, evaluation, models, structures, visualization  # noqa: F401,E402

__version__ = '0.1.0'
__all__ = ['ClassHierarchy', 'HierarchyError', '__version__']
