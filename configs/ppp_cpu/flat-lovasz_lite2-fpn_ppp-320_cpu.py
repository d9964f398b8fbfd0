# The recipe's flat twin (flat_lite2-fpn_ppp-320_cpu.py) with a Lovász-softmax term on the
# leaves beside its leaf cross-entropy, weight 1 each: the IoU surrogate human-parsing
# models add to CE. Computed at the head's 1/4 resolution (`loss_resolution='logits'`),
# where its per-class sort has 1/16 of the label size's pixels. Measured in README
# "Real PASCAL-Person-Part on a CPU".
_base_ = ['./flat_lite2-fpn_ppp-320_cpu.py']
model = dict(decode_head=dict(loss_decode=[
    dict(type='HierarchicalCrossEntropyLoss', levels=[-1]),
    dict(type='HierarchicalLovaszLoss', levels=[-1], loss_resolution='logits')]))
