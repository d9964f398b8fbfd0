from .load_checked_annotations import LoadCheckedAnnotations
from .load_checked_image import LoadCheckedImageFromFile
from .load_npy_annotations import LoadNpyAnnotations
from .seeded_albu import SeededAlbu

__all__ = ['LoadCheckedAnnotations', 'LoadCheckedImageFromFile', 'LoadNpyAnnotations',
           'SeededAlbu']
