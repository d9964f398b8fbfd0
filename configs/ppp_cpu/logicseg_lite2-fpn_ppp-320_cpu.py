# LogicSeg (Li et al., ICCV 2023) on the real PASCAL-Person-Part CPU recipe: this recipe's
# network, data, optimiser and 1,800 iterations (hssn_lite2-fpn_ppp-320_cpu.py) with
# LogicSeg's objective and its logic-guided inference, so that it compares with HSSN and
# the flat twin at equal steps. The objective is configs/_base_/losses/logicseg.py's
# (0.5 focal BCE on every node + 0.3 f (C + D + 2/3 E)), restated here because that file's
# list carries its own ramp: the rules' weight f goes 0 -> 1 over the fractions of training
# LogicSeg ramps over (20k-50k of 60k), iterations 600-1,500 here. Inference: 2 rounds of
# message passing, then the top-scoring path.
_base_ = ['./hssn_lite2-fpn_ppp-320_cpu.py']
logic_ramp = (600, 1500)
model = dict(decode_head=dict(
    inference='logic', inference_options=dict(iterations=2),
    loss_decode=[
        dict(type='NodeFocalLoss', alpha=0.5, gamma=2.0, loss_weight=0.5),
        dict(type='LogicCompositionLoss', p=5, ramp_iters=logic_ramp, loss_weight=0.3),
        dict(type='LogicDecompositionLoss', p=5, ramp_iters=logic_ramp, loss_weight=0.3),
        dict(type='LogicExclusionLoss', p=3, ramp_iters=logic_ramp, loss_weight=0.2),
    ]))
