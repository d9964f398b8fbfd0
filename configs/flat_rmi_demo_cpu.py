# The flat baseline of the CPU demo plus the release's RMI term: leaf softmax + leaf
# cross-entropy + 0.25 x RMI on the sigmoid of the leaf scores, parents summed from children.
# It is the demo's objective without its two tree terms (focal tree-min, tree-triplet), so
# it separates what RMI (a region loss that knows no tree) brings from what the tree brings.
_base_ = ['./flat_demo_cpu.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(loss_decode=[
    dict(type='RMILoss', nodes='leaves', radius=3, pool='max', pool_size=3, jitter=1e-3,
         loss_weight=0.25),
    dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]))
