from .hierarchical_iou_metric import (HierarchicalIoUMetric, background_classes,
                                      confusion_to_metrics, format_level_table,
                                      sample_level_labels)

__all__ = ['HierarchicalIoUMetric', 'background_classes', 'confusion_to_metrics',
           'format_level_table', 'sample_level_labels']
