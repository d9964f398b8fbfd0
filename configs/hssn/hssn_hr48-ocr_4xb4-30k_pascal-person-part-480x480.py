# HSSN with OCRNet on HRNetV2-W48 (SGD 0.007 poly, as the DeepLabV3+ recipe).
# PASCAL-Person-Part, 480x480 crops, 4 GPUs x 4 images, SyncBN, 30k iterations
# `bash tools/dist_train.sh configs/hssn_hrnet_ocr.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_ocrnet_hr48.py', '../_base_/datasets/pascal_person_part.py',
    '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/pascal_person_part.yaml', '../_base_/schedules/schedule_30k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
train_dataloader = dict(batch_size=4)
