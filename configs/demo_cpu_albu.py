# The CPU demo with albumentations' photometric corruptions (blur, noise, colour cast, JPEG
# artefacts; configs/_base_/datasets/albu_photometric.py) before packing each training
# image. Labels are untouched by them; the test pipeline is the demo's.
_base_ = ['./demo_cpu.py', './_base_/datasets/albu_photometric.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
train_pipeline = [t for t in _base_.train_pipeline if t.type != 'PackSegInputs'] + \
    [_base_.albu_photometric, dict(type='PackSegInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
