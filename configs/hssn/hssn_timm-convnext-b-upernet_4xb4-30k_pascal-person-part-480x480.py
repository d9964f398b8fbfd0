# HSSN with UPerNet on a timm backbone: ConvNeXt-B through mmseg's TIMMBackbone, with the
# ImageNet-1k weights mmseg's ConvNeXt-B UPerNet recipe starts from (Facebook's release).
# Another timm model with a 4-level pyramid (strides 4 to 32) needs only `model_name` and
# the heads' `in_channels`; any hierarchical head takes the backbone.
# Needs the timm extra: `pip install -e .[timm]` with a torchvision built for your torch
# (README: timm backbones). PASCAL-Person-Part, 480x480 crops, 4 GPUs x 4 images, SyncBN,
# 30k iterations with the Swin-B recipe's AdamW schedule (not tuned for ConvNeXt).
# `bash tools/dist_train.sh configs/hssn_timm.py 4`
_base_ = [
    '../_base_/models/hssn_upernet_swin-b.py', '../_base_/datasets/pascal_person_part.py',
    '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/pascal_person_part.yaml', '../_base_/schedules/schedule_30k_adamw.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    # timm loads its own weights while the backbone is built: `backbone.pretrained=True`
    # downloads them once from the Hugging Face Hub to its cache; offline, one error names
    # the repository and the keys to set: `backbone.pretrained_cfg_overlay.file=/path.pth`
    # (a local copy) or `backbone.pretrained=False` (from scratch).
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='convnext_base.fb_in1k',
        features_only=True,
        pretrained=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4),  # mmseg's ConvNeXt-B UPerNet value
    # ConvNeXt-B's stages are as wide as Swin-B's (128, 256, 512, 1024): the UPerNet
    # and auxiliary heads of hssn_upernet_swin-b.py fit unchanged.
)
train_dataloader = dict(batch_size=4)
