"""LogicSeg's composition rule as a loss: a node implies its parent."""
from typing import Mapping, Optional, Sequence, Union

from mmseg.registry import MODELS

from ...hierarchy import ClassHierarchy
from .logic_rules import LogicRuleLoss, composition_loss


@MODELS.register_module()
class LogicCompositionLoss(LogicRuleLoss):
    """Composition rule C (LogicSeg, Li et al., ICCV 2023; `loss_c` in lingorX/LogicSeg
    mmseg/models/losses/pascal_part.py): p-mean over every pixel and every node v that
    has a parent of the violation s_v - s_v s_parent(v) of Reichenbach's v -> parent(v).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        p: the p-mean's exponent (LogicSeg: 5).
        ramp_iters, loss_resolution, loss_weight, loss_name: see `LogicRuleLoss`.
    """

    rule = staticmethod(composition_loss)

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 p: float = 5.0,
                 ramp_iters: Optional[Sequence[int]] = None,
                 loss_resolution: Optional[str] = 'logits',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_logic_c') -> None:
        super().__init__(hierarchy, p, ramp_iters, loss_resolution, loss_weight, loss_name)
