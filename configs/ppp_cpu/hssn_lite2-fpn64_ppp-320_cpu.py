# The plain reference's decoder (tools/analysis/plain_baseline.py) on the Lite2 recipe: a
# 64-channel FPN, one 3x3 conv at 1/4 and the node scorer (mmseg's FCNHead on the FPN's
# finest level), so a step is short (flat twin 669 ms against 971 for the 128-channel
# semantic-FPN head, benchmark.py, batch 8, 2-core EPYC) and 5,400 iterations fit in the
# time the flat twin may take: 73.3 minutes at 0.787 s/iter here. Measured on the seeds'
# split it is no better than the recipe's 1,800 iterations of the wider head (the
# fifth round of docs/ppp_cpu_recipe.md), so the recipes keep that one; this pair is
# kept to rerun the row.
# HSSN's step is about 1.28x the flat twin's (benchmark.py), so its 5,400 iterations
# take about 95 minutes (to be measured).
_base_ = ['./hssn_lite2-fpn_ppp-320_cpu.py']
iters = 5400
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    neck=dict(out_channels=64),
    decode_head=dict(
        _delete_=True,
        type='HierarchicalFCNHead',
        in_channels=64, in_index=0, channels=64, num_convs=1, kernel_size=3,
        concat_input=False, dropout_ratio=0.0, norm_cfg=norm_cfg, align_corners=False,
        inference='tree_min', embedding_channels=64,
        loss_decode={{_base_.model.decode_head.loss_decode}}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=100, end=iters, by_epoch=False)]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=iters // 2))
