_base_ = ['./logicseg/logicseg_r101-d8_4xb2-240k_mapillary-v2-512x1024.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
