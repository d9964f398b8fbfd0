import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Mapping, Optional, Union

from mmseg.registry import DATASETS

from ..hierarchy import ClassHierarchy
from .pascal_person_part import PascalPersonPartDataset
from .synthetic_people import make_synthetic_people

_STAMP = 'synthetic_people.json'


@DATASETS.register_module()
class SyntheticPeopleDataset(PascalPersonPartDataset):
    """Synthetic people in the standard layout, generated on first use.

    When `data_root` holds no data yet and `generate` is given, the data is
    written first (`make_synthetic_people(data_root, **generate)`), so a demo
    config trains on a fresh clone. The generation settings are stamped in
    `data_root/synthetic_people.json`; other settings than the stamp's are an
    error (delete the folder to regenerate), never a silent mix.

    Args:
        generate: keyword arguments of `make_synthetic_people` (num_train,
            num_val, size, seed, max_people), layout excepted.
        Others as `PascalPersonPartDataset`.
    """

    def __init__(self, hierarchy: Union[ClassHierarchy, Mapping, str],
                 data_root: str, generate: Optional[dict] = None, **kwargs) -> None:
        if generate is not None:
            ensure_synthetic_people(data_root, dict(generate))
        super().__init__(hierarchy=hierarchy, data_root=data_root, **kwargs)

    @classmethod
    def check_paths(cls, cfg: Mapping, key: str) -> None:
        """As `PascalPersonPartDataset.check_paths`, except that with `generate`
        nothing need exist yet: building the dataset writes it."""
        if cfg.get('generate') is None:
            super().check_paths(cfg, key)


def ensure_synthetic_people(data_root: str, settings: dict) -> None:
    """Generate the data into `data_root` unless it is there with these settings."""
    if 'layout' in settings:
        raise ValueError('SyntheticPeopleDataset writes the standard layout; use '
                         'tools/make_synthetic_people.py --layout seeds for the other')
    settings = {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in settings.items()}
    stamp = osp.join(data_root, _STAMP)
    if osp.exists(stamp):
        with open(stamp) as f:
            found = json.load(f)
        if found != settings:
            raise ValueError(f'{data_root} holds synthetic people made with {found}, the config '
                             f'asks for {settings}; delete the folder to regenerate')
        return
    if osp.exists(data_root) and os.listdir(data_root):
        if osp.exists(stamp):  # another process has just finished it
            return ensure_synthetic_people(data_root, settings)
        raise ValueError(f'{data_root} is not empty and has no {_STAMP}: not overwriting it')
    # Written beside the target and renamed into place, so concurrent ranks never
    # read a half-written folder; the data is deterministic, the first rename wins.
    parent = osp.dirname(osp.abspath(data_root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.synthetic_people_', dir=parent)
    try:
        make_synthetic_people(tmp, **settings)
        with open(osp.join(tmp, _STAMP), 'w') as f:
            json.dump(settings, f)
        if osp.isdir(data_root) and not os.listdir(data_root):
            os.rmdir(data_root)
        try:
            os.rename(tmp, data_root)
        except OSError:
            if not osp.exists(stamp):  # not another rank's win: a real failure
                raise
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
