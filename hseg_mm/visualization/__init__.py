from .hierarchical_seg_visualizer import HierarchicalSegVisualizer, render_level_panel
from .hierarchical_visualization_hook import HierarchicalVisualizationHook
from .mlflow_vis_backend import MLflowSeriesVisBackend
from ..palette import leaf_palette, level_palettes, node_palette

__all__ = ['HierarchicalSegVisualizer', 'HierarchicalVisualizationHook', 'leaf_palette',
           'level_palettes', 'MLflowSeriesVisBackend', 'node_palette', 'render_level_panel']
