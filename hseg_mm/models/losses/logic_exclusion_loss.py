"""LogicSeg's exclusion rule as a loss: the classes of one level exclude each other."""
from typing import Mapping, Optional, Sequence, Union

from mmseg.registry import MODELS

from ...hierarchy import ClassHierarchy
from .logic_rules import LogicRuleLoss, exclusion_loss


@MODELS.register_module()
class LogicExclusionLoss(LogicRuleLoss):
    """Exclusion rule E (LogicSeg, Li et al., ICCV 2023; `loss_e` in lingorX/LogicSeg
    mmseg/models/losses/pascal_part.py): at each level, over the pixels not yet confident
    there (confident: exactly one class > 0.7, all others < 0.3), the p-mean of s_i s_j
    over all ordered pairs i != j (the diagonal of the C_k x C_k pair matrix counted as
    0); levels weighted by C_k^2 / sum_j C_j^2 (`exclusion_loss`).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        p: the p-mean's exponent (LogicSeg: 3).
        ramp_iters, loss_resolution, loss_weight, loss_name: see `LogicRuleLoss`.
    """

    rule = staticmethod(exclusion_loss)

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 p: float = 3.0,
                 ramp_iters: Optional[Sequence[int]] = None,
                 loss_resolution: Optional[str] = 'logits',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_logic_e') -> None:
        super().__init__(hierarchy, p, ramp_iters, loss_resolution, loss_weight, loss_name)
