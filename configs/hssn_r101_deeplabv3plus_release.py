_base_ = ['./hssn/hssn_r101-d8_4xb4-60k_pascal-person-part-480x480_release.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
