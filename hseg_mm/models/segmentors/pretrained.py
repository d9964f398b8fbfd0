"""Pretrained backbone weights come from a local file the user names; nothing downloads.

mmseg loads backbone weights late (in `init_weights`, after the data is set up) and
would fetch `open-mmlab://...` names from the network. Checking at build time turns a
missing file into one clear message that names the file and the config key to set.
"""
import os.path as osp
from collections.abc import Mapping
from typing import List, Optional, Tuple

__all__ = ['check_pretrained_weights']


def _weight_references(pretrained: Optional[str], backbone: Mapping) -> List[Tuple[str, str]]:
    """(config key, path) of every weight file the model would load."""
    refs = []
    if pretrained is not None:
        refs.append(('model.pretrained', pretrained))
    if backbone.get('pretrained') is not None:
        refs.append(('model.backbone.pretrained', backbone['pretrained']))
    init_cfg = backbone.get('init_cfg')
    init_cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for i, cfg in enumerate(init_cfgs):
        if isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained':
            key = 'model.backbone.init_cfg' + (f'.{i}' if isinstance(init_cfg, (list, tuple))
                                               else '') + '.checkpoint'
            refs.append((key, cfg.get('checkpoint')))
    return refs


def check_pretrained_weights(pretrained: Optional[str], backbone: Mapping) -> None:
    """Raise unless every pretrained weight the model names is an existing local file.

    Args:
        pretrained: the segmentor's `pretrained` argument (None: from scratch).
        backbone: the backbone config (its `pretrained` and `init_cfg` are checked).

    Raises:
        FileNotFoundError: naming the file and the key to set, for a missing file
            or a remote name (e.g. 'open-mmlab://resnet101_v1c').
    """
    for key, path in _weight_references(pretrained, backbone):
        if not isinstance(path, str) or not path:
            raise FileNotFoundError(f'{key} = {path!r} is not a weight file path; set it to a '
                                    'local .pth file, or to None to train from scratch')
        if '://' in path:
            raise FileNotFoundError(
                f'{key} = {path!r} is a remote name and nothing is downloaded at run time: '
                f'put the weights in a local file and set {key} to its path '
                f'(e.g. --cfg-options {key}=work_dirs/pretrained/FILE.pth), '
                f'or {key}=None to train from scratch')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'pretrained weights {path!r} (config key {key}) not found: download them once '
                f'to that path, or set --cfg-options {key}=/path/to/weights.pth, '
                f'or {key}=None to train from scratch')
