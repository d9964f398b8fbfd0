"""Data-sample helpers shared by the metric, the visualiser and the tools."""
from .level_labels import pixel_data, sample_level_labels

__all__ = ['pixel_data', 'sample_level_labels']
