_base_ = ['./logicseg/logicseg_r101-d8_4xb4-60k_pascal-part-108-512x512.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
