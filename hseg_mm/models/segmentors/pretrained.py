"""Pretrained backbone weights, loaded by mmengine, and one error naming the config key
when they cannot be had.

mmseg names backbone weights as mmengine checkpoint names (`open-mmlab://resnet101_v1c`,
https URLs, local paths) and mmengine loads them in `init_weights` (`init_cfg=dict(
type='Pretrained', ...)`, `CheckpointLoader`: rank 0 downloads into torch's hub cache,
the other ranks wait and read it). Building a model touches neither a file nor the
network. When the weights are loaded, the segmentor's `init_weights` runs inside
`named_weight_errors`: a missing local file or an unknown zoo name is refused before
mmengine starts; a download that fails (no network) becomes one error naming the URL,
the config key, the cache file and the ways on: a local file (`--cfg-options
KEY=/path.pth`) or no weights (`KEY=None`).

One exception, mmseg's and timm's design: `TIMMBackbone` creates its timm model with
timm's weights inside its constructor (from the Hugging Face Hub or a URL, into their
caches), so `check_timm_weights` looks at them when the segmentor is built, first.
"""
import os
import os.path as osp
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.runner.checkpoint import (get_deprecated_model_names, get_external_models,
                                        get_mmcls_models)

__all__ = ['PretrainedWeightsError', 'check_pretrained_weights', 'cached_weight_file',
           'check_timm_weights', 'named_weight_errors', 'timm_import_error', 'weight_url',
           'weight_references']

_URL_PREFIXES = ('http://', 'https://')
_ZOO_PREFIXES = ('open-mmlab://', 'openmmlab://', 'mmcls://')
_TIMM_TYPES = ('TIMMBackbone', 'mmseg.TIMMBackbone')
_TIMM_HF_FILES = ('model.safetensors', 'pytorch_model.bin')  # timm's order of preference


class PretrainedWeightsError(FileNotFoundError):
    """Pretrained weights that are neither here nor downloadable; the message names the
    config key to set."""


def weight_url(name: str, key: str = 'model.pretrained') -> Optional[str]:
    """The URL mmengine's CheckpointLoader fetches `name` from.

    `open-mmlab://` and `mmcls://` names are looked up in mmengine's model zoo files
    (`mmengine/hub/*.json`, and `$MMENGINE_HOME/open_mmlab.json` where it exists),
    deprecated names first renamed as mmengine does. None for anything else (a local
    path, or a scheme such as `s3://` that mmengine's file backends resolve).
    """
    if name.startswith(_URL_PREFIXES):
        return name
    if not name.startswith(_ZOO_PREFIXES):
        return None
    scheme, model_name = name.split('://', 1)
    if scheme == 'mmcls':
        urls = get_mmcls_models()
    else:
        urls = get_external_models()
        model_name = get_deprecated_model_names().get(model_name, model_name)
    if model_name not in urls:
        raise PretrainedWeightsError(
            f'{key} = {name!r}: mmengine\'s model zoo has no {model_name!r} (see '
            f'mmengine/hub/{"mmcls" if scheme == "mmcls" else "openmmlab"}.json); set '
            f'--cfg-options {key}=/path/to/weights.pth, or {key}=None to train from scratch')
    return urls[model_name]


def cached_weight_file(url: str) -> str:
    """Where torch's hub cache keeps the file of `url`, as mmengine's loader and timm
    name it: `$TORCH_HOME/hub/checkpoints/<last part of the URL>` (TORCH_HOME defaults
    to ~/.cache/torch)."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))


def _ways_on(key: str) -> str:
    return (f'Download it on a connected machine and set --cfg-options '
            f'{key}=/path/to/weights.pth (or copy it to that cache file), '
            f'or set {key}=None to train from scratch')


def _check_local(key: str, path: str) -> None:
    if not osp.isfile(osp.expanduser(path)):
        raise PretrainedWeightsError(
            f'pretrained weights {path!r} (config key {key}) not found: set --cfg-options '
            f'{key}=/path/to/weights.pth, or {key}=None to train from scratch')


def _download_error(key: str, name: str, url: str, error: BaseException,
                    ways: Optional[str] = None) -> 'PretrainedWeightsError':
    what = 'pretrained weights' + ('' if name == url else f' {name!r}')
    return PretrainedWeightsError(
        f'{what} (config key {key}) could not be downloaded from {url} to '
        f'{cached_weight_file(url)} ({type(error).__name__}: {error}). '
        f'{ways or _ways_on(key)}')


def _mmengine_home() -> str:
    # mmengine's rule for the folder its zoo's relative names live in (read, not imported:
    # mmengine keeps it private)
    return osp.expanduser(os.getenv('MMENGINE_HOME', osp.join(
        os.getenv('XDG_CACHE_HOME', '~/.cache'), 'mmengine')))


def _pending_url(key: str, name: object) -> Optional[str]:
    """Check one weight name without the network; the URL still to download, if any."""
    if not isinstance(name, str) or not name:
        raise PretrainedWeightsError(
            f'{key} = {name!r} is not a weight file, URL or open-mmlab:// name; set it to '
            'one, or to None to train from scratch')
    url = weight_url(name, key)
    if url is None:
        if '://' not in name:
            _check_local(key, name)
        return None  # other schemes (s3://, pavi://, torchvision://...) are mmengine's
    if not url.startswith(_URL_PREFIXES):  # a zoo entry naming a file under $MMENGINE_HOME
        _check_local(key, osp.join(_mmengine_home(), url))
        return None
    return None if osp.isfile(cached_weight_file(url)) else url


def weight_references(pretrained: Optional[str], backbone: Mapping) -> List[Tuple[str, str]]:
    """(config key, name) of every mmengine-loaded weight file a model config names."""
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


def timm_import_error() -> Optional[str]:
    """Why timm does not import here, and what to do about it; None where it does."""
    try:
        import timm  # noqa: F401
    except Exception as err:  # ImportError, or a torchvision built for another torch
        return (f'timm does not import here ({type(err).__name__}: {err}): timm backbones '
                'need the optional extra `pip install -e .[timm]` and a torchvision built for '
                "this torch (PyPI's torchvision wheels are CUDA builds: with a CPU torch "
                'their `torchvision::nms` operator fails to load; README: timm backbones)')
    return None


def _check_timm_backbone(pretrained: Optional[str], backbone: Mapping) -> None:
    """timm's weights for a `TIMMBackbone`: `pretrained` is a bool there, and timm
    loads them itself while the backbone is built (`pretrained_cfg_overlay.file` names
    a local file instead of the hub)."""
    if pretrained is not None:
        # EncoderDecoder would hand the string to timm, which reads it as True
        raise ValueError(
            f'model.pretrained = {pretrained!r}, but a TIMMBackbone loads timm\'s weights: '
            'set model.pretrained=None and model.backbone.pretrained=True (timm\'s weights '
            'for model_name), or model.backbone.pretrained_cfg_overlay.file=/path.pth')
    reason = timm_import_error()
    if reason:
        raise ImportError(f'model.backbone is a TIMMBackbone, but {reason}')
    import timm
    if backbone.get('checkpoint_path'):
        _check_local('model.backbone.checkpoint_path', backbone['checkpoint_path'])
    if not backbone.get('pretrained', True):  # TIMMBackbone's default is True
        return
    overlay = backbone.get('pretrained_cfg_overlay') or {}
    if overlay.get('file'):
        _check_local('model.backbone.pretrained_cfg_overlay.file', overlay['file'])
        return
    key = 'model.backbone.pretrained'
    model_name = backbone.get('model_name')
    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
    except RuntimeError as err:  # an unknown tag
        raise ValueError(f'model.backbone.model_name = {model_name!r}: {err}') from None
    hub_id = getattr(cfg, 'hf_hub_id', None) if cfg is not None else None
    url = getattr(cfg, 'url', None) if cfg is not None else None
    ways = (f'Download it on a connected machine and set --cfg-options '
            f'model.backbone.pretrained_cfg_overlay.file=/path/to/weights (.pth or '
            f'.safetensors), or set {key}=False to train from scratch')
    if hub_id:  # timm prefers the Hub where a model has both
        _fetch_hf(key, model_name, hub_id, getattr(cfg, 'hf_hub_filename', None), ways)
    elif url:
        _fetch_url(key, model_name, url, ways)
    else:
        raise PretrainedWeightsError(
            f'{key} = True, but timm names no pretrained weights for {model_name!r}. {ways}')


def _download(url: str, cache_file: str) -> Optional[Exception]:
    """Fetch `url` into `cache_file` unless it is there; the error, or None."""
    if osp.isfile(cache_file):
        return None
    try:
        os.makedirs(osp.dirname(cache_file), exist_ok=True)
        # torch writes to a temporary file and renames it: no half file is left behind
        torch.hub.download_url_to_file(url, cache_file, progress=os.isatty(0))
    except Exception as err:  # URLError, HTTPError, timeouts, disk full: the same advice
        return err
    return None


def _fetch_url(key: str, name: str, url: str, ways: Optional[str] = None) -> None:
    """Make sure the file of `url` is in torch's hub cache, or raise one error on every
    rank: rank 0 downloads first, the others after a barrier (reading rank 0's file where
    they share its file system), so no rank waits for one that stopped."""
    cache_file = cached_weight_file(url)
    rank, world_size = get_dist_info()
    error = _download(url, cache_file) if rank == 0 else None
    if world_size > 1:
        barrier()
        if rank > 0:
            error = _download(url, cache_file)
    if error is not None:
        raise _download_error(key, name, url, error, ways)


def _fetch_hf(key: str, model_name: str, hub_id: str, filename: Optional[str],
              ways: str) -> None:
    """Make sure timm's file of `hub_id` is in the Hugging Face cache, or raise one error."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError
    repo_id, _, revision = hub_id.partition('@')
    names = [filename] if filename else _TIMM_HF_FILES
    if any(isinstance(try_to_load_from_cache(repo_id, name, revision=revision or None), str)
           for name in names):
        return  # cached: timm reads it (offline after its own retries)
    error = None
    for name in names:
        try:
            hf_hub_download(repo_id, name, revision=revision or None)
            return
        except LocalEntryNotFoundError as err:  # the Hub cannot be reached: nor for the next
            error = err
            break
        except EntryNotFoundError as err:  # not in that repository: timm tries the next
            error = err
        except Exception as err:
            error = err
            break
    raise PretrainedWeightsError(
        f'timm weights of {model_name!r} (config key {key}) could not be downloaded from '
        f'https://huggingface.co/{repo_id} to {constants.HF_HUB_CACHE} '
        f'({type(error).__name__}: {error}). {ways}')


def check_pretrained_weights(references: Sequence[Tuple[str, str]]) -> List[Tuple[str, str, str]]:
    """Check weight names without the network: local files exist, zoo names are known.

    Args:
        references: (config key, name) pairs, as `weight_references` gives them.

    Returns:
        (key, name, URL) of the weights still to download (not in torch's hub cache).

    Raises:
        PretrainedWeightsError: (a FileNotFoundError) a missing local file or an unknown
            `open-mmlab://` name; the message names the config key and how to give a
            local file or train from scratch.
    """
    pending = []
    for key, name in references:
        url = _pending_url(key, name)
        if url is not None:
            pending.append((key, name, url))
    return pending


@contextmanager
def named_weight_errors(references: Sequence[Tuple[str, str]]) -> Iterator[None]:
    """Run mmengine's loading of the weights `references` names (the segmentor's
    `init_weights`); a download that fails becomes one `PretrainedWeightsError`.

    The names are checked first (`check_pretrained_weights`). mmengine's loader then
    downloads what is not cached (rank 0 first, as its `load_from_http` does); if it
    raises an OSError (a URLError, an HTTP error, a timeout, a full disk), the first
    weight file still missing from the cache is named with its key, URL and cache file.
    Distributed, the files are fetched first (`_fetch_url`): mmengine's other ranks wait
    at a barrier that a rank 0 whose download failed would never reach.
    """
    pending = check_pretrained_weights(references)
    if get_dist_info()[1] > 1:
        for key, name, url in pending:
            _fetch_url(key, name, url)
    try:
        yield
    except OSError as err:
        if isinstance(err, PretrainedWeightsError):
            raise
        for key, name, url in pending:
            if not osp.isfile(cached_weight_file(url)):
                raise _download_error(key, name, url, err) from None
        raise


def check_timm_weights(pretrained: Optional[str], backbone: Mapping) -> None:
    """For a `TIMMBackbone`, whose constructor loads timm's weights: find them, or fetch
    them once, before it is built; nothing for other backbones.

    Raises:
        PretrainedWeightsError: a missing local file, or weights neither cached nor
            downloadable (the message names the key, the source and the ways on).
        ImportError: timm does not import here.
        ValueError: `model.pretrained` set for a TIMMBackbone.
    """
    if backbone.get('type') in _TIMM_TYPES:
        _check_timm_backbone(pretrained, backbone)
