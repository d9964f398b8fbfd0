# THE ONE PLACE WHERE LOGICSEG'S OBJECTIVE GOES, for the recipes in configs/logicseg/ (each
# takes it with `decode_head=dict(loss_decode={{_base_.logicseg_loss}})`).
# LogicSeg (Li et al., ICCV 2023; lingorX/LogicSeg, mmseg/models/losses/pascal_part.py):
# 0.5 focal BCE on every node + 0.3 f (C + D + 2/3 E), where C (composition: a node implies
# its parent), D (decomposition: a parent implies one of its children) and E (exclusion:
# siblings exclude each other) are the fuzzy-logic rule losses and f ramps 0 -> 1 from 20k to
# 50k iterations (issue 23, item 1).
# >>> Until those rule losses exist in hseg-mm, this list holds HSSN's terms (those of
# >>> configs/_base_/models/hssn_deeplabv3plus_r101-d8.py), so the recipes train HSSN under
# >>> LogicSeg's settings: the HSSN row of LogicSeg's tables. Replace the list below, and
# >>> nothing else, when the rule losses land.
logicseg_loss = [
    dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=1.0),
    dict(type='TreeTripletLoss', margin=0.6,
         weight_schedule=dict(type='cosine', start=0.0, end=0.5)),
    dict(type='HierarchicalCrossEntropyLoss', levels=None, loss_weight=1.0),
]
