# LogicSeg's Pascal-Part-108 setting (Li et al., ICCV 2023; lingorX/LogicSeg, local_configs/
# deeplabv3plus/deeplabv3plus_r101-d8_512x512_80k_pascal_part108_hiera.py, which runs its
# schedule_60k.py despite its name): DeepLabV3+ on ResNet-101-D8 (ImageNet ResNetV1c), 512x512
# crops, 4 GPUs x 4 images, SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly (power 0.9)
# down to 1e-4, 60k iterations. Tree: 21 objects over 108 parts (pascal_part_108); data:
# LogicSeg's layout with GMNet's split (configs/_base_/datasets/pascal_part_108.py).
# Anchors (leaf mIoU, val, DeepLabV3+ R-101; published, not measured here): HSSN 48.32,
# LogicSeg 48.46.
# Objective: LogicSeg's (configs/_base_/losses/logicseg.py); inference: its logic-guided
# message passing ('logic', 2 rounds; hseg_mm/models/logic_inference.py says how far that
# reconstruction is checked). LogicSeg's released test argmaxes the leaf channels alone.
# `bash tools/dist_train.sh configs/logicseg_pascal_part108.py 4`.
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/pascal_part_108.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/pascal_part_108.yaml',
    '../_base_/schedules/schedule_80k.py', '../_base_/losses/logicseg.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(loss_decode={{_base_.logicseg_loss}}, inference='logic',
                     inference_options=dict(iterations=2)))
# schedule_80k.py's optimiser (mmseg's: SGD lr 0.01, weight decay 5e-4, poly to 1e-4) for
# LogicSeg's 60k iterations, validation and checkpoints every 6k as its schedule_60k.py
train_cfg = dict(max_iters=60000, val_interval=6000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=60000, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=6000))
