# LogicSeg (Li et al., ICCV 2023) on the CPU demo: the demo's model, data and schedule with
# LogicSeg's objective and its logic-guided inference. The objective is LogicSeg's
# `HieraLossPascalPart` (lingorX/LogicSeg, mmseg/models/losses/pascal_part.py) for any tree:
# 0.5 focal BCE on every node + 0.3 f (C + D + 2/3 E), the rules' weight f ramped linearly
# from 0 to 1. LogicSeg ramps over iterations 20k-50k of 60k; here over the same fractions
# of the demo's 3,000 (1,000-2,500). As in LogicSeg, the rules see the head's own logits
# (its `cls_score_ori`, the rule losses' loss_resolution='logits'), the focal BCE logits
# resized to the label (the head's loss_resolution='label'); the rules count every pixel.
# Inference: message passing over the tree with the rules as messages, 2 rounds, then the
# top-scoring path (`inference_options=dict(iterations=0)` is the plain path sum).
_base_ = ['./demo_cpu.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
logic_ramp = (1000, 2500)
model = dict(decode_head=dict(
    inference='logic', inference_options=dict(iterations=2),
    loss_decode=[
        dict(type='NodeFocalLoss', alpha=0.5, gamma=2.0, loss_weight=0.5),
        dict(type='LogicCompositionLoss', p=5, ramp_iters=logic_ramp, loss_weight=0.3),
        dict(type='LogicDecompositionLoss', p=5, ramp_iters=logic_ramp, loss_weight=0.3),
        dict(type='LogicExclusionLoss', p=3, ramp_iters=logic_ramp, loss_weight=0.2),
    ]))
