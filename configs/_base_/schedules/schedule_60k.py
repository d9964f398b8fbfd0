# The HSSN release's PASCAL-Person-Part schedule (its configs/_base_/schedules/schedule_60k.py):
# SGD, lr 0.007, momentum 0.9, weight decay 5e-5, poly (power 0.9) down to 5e-5, 60k
# iterations, validation and checkpoints every 6000. The rest as schedule_30k.py.
_base_ = ['./schedule_30k.py']
optimizer = dict(lr=0.007, weight_decay=0.00005)
optim_wrapper = dict(optimizer=dict(lr=0.007, weight_decay=0.00005))
param_scheduler = [
    dict(type='PolyLR', eta_min=5e-5, power=0.9, begin=0, end=60000, by_epoch=False)
]
train_cfg = dict(max_iters=60000, val_interval=6000)
default_hooks = dict(checkpoint=dict(interval=6000))
