# LogicSeg's objective, stated once for the recipes in configs/logicseg/ (each takes it with
# `decode_head=dict(loss_decode={{_base_.logicseg_loss}})`). LogicSeg (Li et al., ICCV 2023;
# lingorX/LogicSeg, mmseg/models/losses/pascal_part.py, `HieraLossPascalPart`):
# 0.5 focal BCE on every node + 0.3 f (C + D + 2/3 E), where C (composition: a node implies
# its parent), D (decomposition: a parent implies one of its children) and E (exclusion: the
# classes of a level exclude each other) are the fuzzy-logic rule losses
# (hseg_mm/models/losses/logic_rules.py) and f ramps 0 -> 1 from 20k to 50k iterations.
# (LogicSeg's Mapillary loss has its rules commented out; its Pascal-Part ramp is used for
# both recipes.) HSSN's terms instead: configs/_base_/models/hssn_deeplabv3plus_r101-d8.py.
logic_ramp = (20000, 50000)
logicseg_loss = [
    dict(type='NodeFocalLoss', alpha=0.5, gamma=2.0, loss_weight=0.5),
    dict(type='LogicCompositionLoss', p=5, ramp_iters=logic_ramp, loss_weight=0.3),
    dict(type='LogicDecompositionLoss', p=5, ramp_iters=logic_ramp, loss_weight=0.3),
    dict(type='LogicExclusionLoss', p=3, ramp_iters=logic_ramp, loss_weight=0.2),
]
