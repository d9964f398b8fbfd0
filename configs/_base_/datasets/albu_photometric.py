# Photometric corruptions from albumentations (2.x argument names), as one train-pipeline
# transform: blur, sensor noise, a colour cast, JPEG artefacts. Every transform in it is
# pixel-level (albumentations' ImageOnlyTransform), so the label map, ignore pixels (255)
# included, passes through untouched. Opt-in: a config puts `albu_photometric` into its
# train pipeline (configs/demo_cpu_albu.py); the benchmark recipes leave it out, as the
# papers they reproduce trained without it.
albu_photometric = dict(
    # mmseg's Albu, reseeded from numpy at each call so `randomness` seeds it too
    type='SeededAlbu',
    transforms=[
        # defocus or camera shake
        dict(type='OneOf', p=0.2, transforms=[
            dict(type='GaussianBlur', blur_limit=(3, 5), p=1.0),
            dict(type='MotionBlur', blur_limit=(3, 5), p=1.0)]),
        # sensor noise, std 2-6% of 255 (1.x: var_limit, ignored with a warning by 2.x)
        dict(type='GaussNoise', std_range=(0.02, 0.06), p=0.2),
        # white-balance error; PhotoMetricDistortion shifts hue, not single channels
        dict(type='RGBShift', r_shift_limit=15, g_shift_limit=15, b_shift_limit=15, p=0.2),
        # compression artefacts (1.x: quality_lower / quality_upper)
        dict(type='ImageCompression', compression_type='jpeg', quality_range=(30, 90),
             p=0.2),
    ])
