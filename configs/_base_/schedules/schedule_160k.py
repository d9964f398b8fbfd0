# mmseg's 160k schedule (SGD, lr 0.01, poly; what its Cityscapes DeepLabV3+ recipes use).
# The HSSN release trains Cityscapes for 80k and LIP for 160k iterations. Validation and
# checkpoints every 16000 iterations; the rest as schedule_30k.py.
_base_ = ['./schedule_30k.py']
optimizer = dict(lr=0.01)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=160000, by_epoch=False)
]
train_cfg = dict(max_iters=160000, val_interval=16000)
default_hooks = dict(checkpoint=dict(interval=16000))
