from .hierarchical_iou_metric import (HierarchicalIoUMetric, background_classes,
                                      confusion_to_metrics, format_level_table)

__all__ = ['HierarchicalIoUMetric', 'background_classes', 'confusion_to_metrics',
           'format_level_table']
