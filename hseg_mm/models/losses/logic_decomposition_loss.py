"""LogicSeg's decomposition rule as a loss: a parent implies one of its children."""
from typing import Mapping, Optional, Sequence, Union

from mmseg.registry import MODELS

from ...hierarchy import ClassHierarchy
from .logic_rules import LogicRuleLoss, decomposition_loss


@MODELS.register_module()
class LogicDecompositionLoss(LogicRuleLoss):
    """Decomposition rule D (LogicSeg, Li et al., ICCV 2023; `loss_d` in lingorX/LogicSeg
    mmseg/models/losses/pascal_part.py): p-mean over every pixel and every node u that
    has children of the violation s_u - s_u max_c s_c of u -> OR of its children, max
    being the fuzzy OR.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        p: the p-mean's exponent (LogicSeg: 5).
        ramp_iters, loss_resolution, loss_weight, loss_name: see `LogicRuleLoss`.
    """

    rule = staticmethod(decomposition_loss)

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 p: float = 5.0,
                 ramp_iters: Optional[Sequence[int]] = None,
                 loss_resolution: Optional[str] = 'logits',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_logic_d') -> None:
        super().__init__(hierarchy, p, ramp_iters, loss_resolution, loss_weight, loss_name)
