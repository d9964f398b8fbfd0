"""Hierarchical losses: each a plain function plus a registered module."""
from .focal_tree_min_loss import FocalTreeMinLoss, focal_tree_min_loss, level_mean_weights
from .hierarchical_cross_entropy_loss import (HierarchicalCrossEntropyLoss,
                                              hierarchical_cross_entropy)
from .hierarchical_lovasz_loss import (HierarchicalLovaszLoss, hierarchical_lovasz,
                                       lovasz_softmax_columns)
from .logic_composition_loss import LogicCompositionLoss
from .logic_decomposition_loss import LogicDecompositionLoss
from .logic_exclusion_loss import LogicExclusionLoss
from .logic_rules import composition_loss, decomposition_loss, exclusion_loss, ramp_factor
from .node_focal_loss import NodeFocalLoss, node_focal_loss
from .rmi_loss import RMILoss, rmi_loss, rmi_lower_bound
from .tree_triplet_loss import (TreeTripletLoss, sample_triplets, scheduled_weight,
                                tree_triplet_loss)

__all__ = [
    'FocalTreeMinLoss', 'focal_tree_min_loss', 'level_mean_weights',
    'HierarchicalCrossEntropyLoss', 'hierarchical_cross_entropy', 'TreeTripletLoss',
    'tree_triplet_loss', 'sample_triplets', 'scheduled_weight', 'RMILoss', 'rmi_loss',
    'rmi_lower_bound', 'LogicCompositionLoss', 'LogicDecompositionLoss', 'LogicExclusionLoss',
    'composition_loss', 'decomposition_loss', 'exclusion_loss', 'ramp_factor', 'NodeFocalLoss',
    'node_focal_loss', 'HierarchicalLovaszLoss', 'hierarchical_lovasz', 'lovasz_softmax_columns'
]
