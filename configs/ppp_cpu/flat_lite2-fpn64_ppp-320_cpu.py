# The flat twin of hssn_lite2-fpn64_ppp-320_cpu.py: leaf softmax + leaf cross-entropy,
# parents summed from children; the one statement below is the switch.
_base_ = ['./hssn_lite2-fpn64_ppp-320_cpu.py']
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]))
