_base_ = ['./hssn/hssn_timm-convnext-b-upernet_4xb4-30k_pascal-person-part-480x480.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
