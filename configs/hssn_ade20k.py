_base_ = ['./hssn/hssn_r101-d8_4xb4-160k_ade20k-512x512.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
