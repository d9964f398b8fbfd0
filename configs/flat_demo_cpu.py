# The flat baseline of the CPU demo: leaf softmax + leaf cross-entropy, parents summed
# from children. Same model, data and schedule; the one statement below is the switch.
_base_ = ['./demo_cpu.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]))
