"""Pretrained weights load in mmengine's `init_weights`; building a model reads none, and
a missing file, an unknown name or a failed download is one error naming the config key.

Nothing here reaches a network: torch's and mmengine's caches point into tmp_path, and
every download either meets a port nobody listens on or a downloader that fails when
called. The timm tests skip where timm does not import (the optional extra).
"""
import json
import os
import os.path as osp
import re
import socket
import sys
from urllib.error import URLError

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from hseg_mm.engine.launch import skip_pretrained
from hseg_mm.models.segmentors import check_pretrained_weights
from hseg_mm.models.segmentors.pretrained import (cached_weight_file, check_timm_weights,
                                                  timm_import_error, weight_references,
                                                  weight_url)

init_default_scope('mmseg')

R101_URL = 'https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth'
TIMM_MISSING = timm_import_error()
needs_timm = pytest.mark.skipif(TIMM_MISSING is not None, reason=str(TIMM_MISSING))


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """torch's hub cache (TORCH_HOME) and mmengine's home in tmp_path; returns the
    checkpoints folder both mmengine's loader and our check use."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


@pytest.fixture
def no_download(monkeypatch):
    """A downloader that records its calls and fails as an offline machine does."""
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise URLError('[Errno -2] Name or service not known')
    # torch.hub.load_state_dict_from_url (mmengine's `load_url`) calls it
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    return calls


def _unreachable_url(name: str) -> str:
    with socket.socket() as s:  # a free port: connecting to it is refused at once
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}/{name}'


def _tiny_model_cfg(**kwargs) -> ConfigDict:
    """HSSN on a ResNetV1c-18 of width 8 (last stage 64 channels), one FCN head."""
    cfg = dict(
        type='HierarchicalEncoderDecoder', hierarchy='pascal_person_part', pretrained=None,
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                      norm_cfg=dict(type='BN')),
        decode_head=dict(type='HierarchicalFCNHead', in_channels=64, in_index=3, channels=8,
                         num_convs=1, norm_cfg=dict(type='BN'),
                         loss_decode=[dict(type='HierarchicalCrossEntropyLoss')]),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    cfg.update(kwargs)
    return ConfigDict(cfg)  # attribute access, as mmseg's segmentors expect


def _save_backbone(path) -> None:
    """Save a ResNetV1c-18/8's weights (stem filled with 0.5) to `path`, keyed as an
    ImageNet checkpoint holds them."""
    backbone = MODELS.build(_tiny_model_cfg()['backbone'])
    with torch.no_grad():
        backbone.stem[0].weight.fill_(0.5)
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    torch.save(backbone.state_dict(), str(path))


# ------------------------------------------------------------- local files
def test_a_local_file_is_loaded(tmp_path, no_download):
    path = tmp_path / 'r18.pth'
    _save_backbone(path)
    model = MODELS.build(_tiny_model_cfg(pretrained=str(path)))
    model.init_weights()  # mmseg loads the file here, through mmengine's loader
    # every stem weight was saved as 0.5; a random init would not give that
    assert torch.equal(model.backbone.stem[0].weight,
                       torch.full_like(model.backbone.stem[0].weight, 0.5))
    assert no_download == []


def _check(pretrained, backbone):
    return check_pretrained_weights(weight_references(pretrained, backbone))


def test_a_missing_local_file_names_the_key(tmp_path, no_download):
    missing = str(tmp_path / 'resnet101_v1c.pth')
    with pytest.raises(FileNotFoundError,
                       match=r"resnet101_v1c.pth' \(config key model.pretrained\) not found: "
                             r'set --cfg-options model.pretrained=/path/to/weights.pth, '
                             r'or model.pretrained=None'):
        _check(missing, dict(type='ResNetV1c'))
    with pytest.raises(FileNotFoundError, match=r'config key model.backbone.init_cfg.checkpoint\)'):
        _check(None, dict(init_cfg=dict(type='Pretrained', checkpoint=missing)))
    with pytest.raises(FileNotFoundError, match=r'config key model.backbone.init_cfg.1.checkpoint'):
        _check(None, dict(init_cfg=[dict(type='Kaiming'),
                                    dict(type='Pretrained', checkpoint=missing)]))
    with pytest.raises(FileNotFoundError, match=r'model.backbone.pretrained = 3 is not a weight'):
        _check(None, dict(pretrained=3))
    # the model builds (it reads no weights); mmengine's init_weights is where they load
    model = MODELS.build(_tiny_model_cfg(pretrained=missing))
    with pytest.raises(FileNotFoundError, match='config key model.pretrained'):
        model.init_weights()
    assert no_download == []


def test_none_trains_from_scratch(no_download):
    assert _check(None, dict(type='ResNetV1c')) == []
    assert _check(None, dict(type='ResNetV1c', init_cfg=dict(type='Kaiming'))) == []
    MODELS.build(_tiny_model_cfg()).init_weights()
    assert no_download == []


# ------------------------------------------------------------- names that download
def test_open_mmlab_names_resolve_as_mmengine_does(caches):
    # mmengine/hub/openmmlab.json, as mmseg's recipes name them
    assert weight_url('open-mmlab://resnet101_v1c') == R101_URL
    assert weight_url('openmmlab://resnet101_v1c') == R101_URL
    assert weight_url('open-mmlab://msra/hrnetv2_w48') == \
        'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w48-d2186c55.pth'
    # a deprecated name (mmengine/hub/deprecated.json) is renamed first, as mmengine does
    assert weight_url('open-mmlab://resnet50_caffe') == \
        weight_url('open-mmlab://detectron/resnet50_caffe')
    assert weight_url('https://x.org/a/w.pth') == 'https://x.org/a/w.pth'
    assert weight_url('work_dirs/w.pth') is None and weight_url('s3://b/w.pth') is None
    # torch.hub's rule: $TORCH_HOME/hub/checkpoints/<last part of the URL path>
    assert cached_weight_file(R101_URL + '?dl=1') == str(caches / 'resnet101_v1c-e67eebb6.pth')
    with pytest.raises(FileNotFoundError, match=r"model.pretrained = 'open-mmlab://no_such_net':"
                                                r" mmengine's model zoo has no 'no_such_net'"):
        _check('open-mmlab://no_such_net', {})
    # a URL not cached yet is the one still to download
    assert _check('open-mmlab://resnet101_v1c', {}) == [
        ('model.pretrained', 'open-mmlab://resnet101_v1c', R101_URL)]


def test_offline_open_mmlab_name_is_one_error_at_init_weights(caches, no_download):
    url = weight_url('open-mmlab://resnet18_v1c')
    model = MODELS.build(_tiny_model_cfg(pretrained='open-mmlab://resnet18_v1c'))
    assert no_download == []  # building fetched nothing
    with pytest.raises(FileNotFoundError) as info:
        model.init_weights()  # mmengine's loader downloads, here offline
    message = str(info.value)
    cache_file = str(caches / osp.basename(url))
    assert message.startswith("pretrained weights 'open-mmlab://resnet18_v1c' (config key "
                              f'model.pretrained) could not be downloaded from {url} to '
                              f'{cache_file} (URLError: ')
    assert message.endswith('Download it on a connected machine and set --cfg-options '
                            'model.pretrained=/path/to/weights.pth (or copy it to that cache '
                            'file), or set model.pretrained=None to train from scratch')
    assert no_download == [url]  # tried once
    assert not osp.exists(cache_file)


def test_unreachable_url_fails_through_the_real_downloader(caches):
    url = _unreachable_url('r18_8.pth')
    cfg = _tiny_model_cfg()
    cfg.backbone.init_cfg = dict(type='Pretrained', checkpoint=url)
    model = MODELS.build(cfg)
    with pytest.raises(FileNotFoundError,
                       match=r'^pretrained weights \(config key '
                             r'model.backbone.init_cfg.checkpoint\) could not be downloaded '
                             rf'from {re.escape(url)} to '
                             rf'{re.escape(str(caches / "r18_8.pth"))} \(URLError: .*\)\. '
                             r'Download it .* --cfg-options model.backbone.init_cfg.checkpoint='
                             r'/path/to/weights.pth .* model.backbone.init_cfg.checkpoint=None'):
        model.init_weights()
    assert not osp.exists(caches / 'r18_8.pth')  # no half file left behind


def test_a_zoo_name_added_in_mmengine_home_fails_offline(caches, tmp_path):
    # $MMENGINE_HOME/open_mmlab.json adds names to mmengine's zoo; here one whose URL
    # is refused, so the real download path runs and fails on any machine
    url = _unreachable_url('my_net.pth')
    (tmp_path / 'mmengine').mkdir()
    (tmp_path / 'mmengine' / 'open_mmlab.json').write_text(json.dumps({'my_net': url}))
    model = MODELS.build(_tiny_model_cfg(pretrained='open-mmlab://my_net'))
    with pytest.raises(FileNotFoundError, match=r"'open-mmlab://my_net' \(config key "
                                                r'model.pretrained\) could not be downloaded '
                                                rf'from {re.escape(url)} '):
        model.init_weights()


def test_a_cached_file_is_used_without_download(caches, no_download):
    # the file mmengine's loader would have downloaded for resnet18_v1c, already there
    url = weight_url('open-mmlab://resnet18_v1c')
    cache_file = cached_weight_file(url)
    assert cache_file == str(caches / osp.basename(url))
    _save_backbone(cache_file)
    model = MODELS.build(_tiny_model_cfg(pretrained='open-mmlab://resnet18_v1c'))
    model.init_weights()  # mmengine's loader reads the same cache file
    assert torch.equal(model.backbone.stem[0].weight,
                       torch.full_like(model.backbone.stem[0].weight, 0.5))
    assert no_download == []


# ------------------------------------------------------------- skip_pretrained
def test_skip_pretrained_turns_every_kind_of_weight_off():
    cfg = Config(dict(model=dict(pretrained='open-mmlab://resnet101_v1c',
                                 backbone=dict(type='ResNetV1c', init_cfg=dict(
                                     type='Pretrained', checkpoint='x.pth')))))
    skip_pretrained(cfg)
    assert cfg.model.pretrained is None and cfg.model.backbone.init_cfg is None
    # TIMMBackbone's `pretrained` is a bool whose default (True) downloads: it is set False
    cfg = Config(dict(model=dict(pretrained=None, backbone=dict(
        type='TIMMBackbone', model_name='convnext_base.fb_in1k', pretrained=True,
        pretrained_cfg_overlay=dict(file='w.pth')))))
    skip_pretrained(cfg)
    assert cfg.model.backbone.pretrained is False
    assert 'pretrained_cfg_overlay' not in cfg.model.backbone
    assert cfg.model.backbone.checkpoint_path == ''


# ------------------------------------------------------------- timm (optional extra)
def test_a_timm_backbone_without_timm_says_which_extra(monkeypatch):
    if TIMM_MISSING is None:
        monkeypatch.setitem(sys.modules, 'timm', None)  # `import timm` then fails
    with pytest.raises(ImportError, match=r'timm does not import here.*pip install -e \.\[timm\]'):
        check_timm_weights(None, dict(type='TIMMBackbone', model_name='test_convnext'))


def test_model_pretrained_is_refused_for_a_timm_backbone():
    with pytest.raises(ValueError, match=r"model.pretrained = 'w.pth', but a TIMMBackbone"):
        check_timm_weights('w.pth', dict(type='TIMMBackbone', model_name='test_convnext'))


@needs_timm
def test_timm_weights_from_a_local_file(tmp_path, no_download):
    import timm
    full = timm.create_model('test_convnext', pretrained=False)
    with torch.no_grad():
        full.stem[0].weight.fill_(0.25)
    torch.save(full.state_dict(), str(tmp_path / 'test_convnext.pth'))
    backbone = dict(type='TIMMBackbone', model_name='test_convnext', pretrained=True,
                    pretrained_cfg_overlay=dict(file=str(tmp_path / 'test_convnext.pth')))
    check_timm_weights(None, backbone)
    built = MODELS.build(backbone)
    # timm loads the classifier's checkpoint into the feature model (stem.0 -> stem_0)
    assert torch.equal(built.timm_model.stem_0.weight,
                       torch.full_like(built.timm_model.stem_0.weight, 0.25))
    with pytest.raises(FileNotFoundError, match=r'config key '
                                                r'model.backbone.pretrained_cfg_overlay.file'):
        check_timm_weights(None, dict(backbone, pretrained_cfg_overlay=dict(
            file=str(tmp_path / 'missing.pth'))))
    check_timm_weights(None, dict(backbone, pretrained=False,
                                        pretrained_cfg_overlay=None))  # from scratch
    assert no_download == []


@needs_timm
def test_timm_weights_offline_are_one_error(monkeypatch, no_download):
    import huggingface_hub
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError
    tried = []

    def hub(missing):
        def download(repo_id, filename, **kwargs):
            tried.append(filename)
            if filename in missing:
                raise missing[filename]
            return f'/cache/{repo_id}/{filename}'
        return download
    monkeypatch.setattr(huggingface_hub, 'try_to_load_from_cache', lambda *a, **k: None)
    backbone = dict(type='TIMMBackbone', model_name='test_convnext')
    # offline, nothing cached: the first file fails to connect; one error, no second try
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', hub(
        {'model.safetensors': LocalEntryNotFoundError('cannot reach the Hub')}))
    with pytest.raises(FileNotFoundError,
                       match=r"timm weights of 'test_convnext' \(config key "
                             r'model.backbone.pretrained\) could not be downloaded from '
                             r'https://huggingface.co/timm/test_convnext.r160_in1k to .*'
                             r'pretrained_cfg_overlay.file=/path/to/weights .*'
                             r'model.backbone.pretrained=False'):
        check_timm_weights(None, backbone)
    assert tried == ['model.safetensors']
    # online, a repository without safetensors: timm's fallback file
    tried.clear()
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', hub(
        {'model.safetensors': EntryNotFoundError('404')}))
    check_timm_weights(None, backbone)
    assert tried == ['model.safetensors', 'pytorch_model.bin']
    # already in the Hugging Face cache: no request at all
    tried.clear()
    monkeypatch.setattr(huggingface_hub, 'try_to_load_from_cache',
                        lambda repo_id, name, **k: f'/cache/{name}')
    check_timm_weights(None, backbone)
    assert tried == [] and no_download == []


@needs_timm
@pytest.mark.parametrize('head', ['HierarchicalFCNHead', 'HierarchicalUPerHead',
                                  'HierarchicalDepthwiseSeparableASPPHead'])
def test_timm_backbone_under_any_hierarchical_head(head):
    # timm's test_convnext: 4 stages of 24, 32, 48, 64 channels at strides 4 to 32
    heads = dict(
        HierarchicalFCNHead=dict(in_channels=64, in_index=3, num_convs=1),
        HierarchicalUPerHead=dict(in_channels=[24, 32, 48, 64], in_index=[0, 1, 2, 3],
                                  pool_scales=(1, 2)),
        HierarchicalDepthwiseSeparableASPPHead=dict(in_channels=64, in_index=3,
                                                    dilations=(1, 2), c1_in_channels=24,
                                                    c1_channels=8))
    cfg = _tiny_model_cfg(
        backbone=dict(type='TIMMBackbone', model_name='test_convnext', pretrained=False),
        decode_head=dict(type=head, channels=8, norm_cfg=dict(type='BN'),
                         loss_decode=[dict(type='FocalTreeMinLoss'),
                                      dict(type='HierarchicalCrossEntropyLoss')],
                         **heads[head]))
    model = MODELS.build(cfg)
    images = torch.randn(2, 3, 64, 64)
    samples = []
    for label in torch.randint(0, 7, (2, 1, 64, 64)):  # 7 leaves in pascal_person_part
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(sample)
    losses = model.loss(images, samples)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    model.eval()
    with torch.no_grad():
        result = model.predict(images, samples)[0]
    assert result.seg_logits.data.shape == (7, 64, 64)
    assert result.pred_level_seg.data.shape == (3, 64, 64)  # background/body, upper/lower, parts


def test_distributed_ranks_fetch_first_and_all_fail_together(caches, no_download, monkeypatch):
    # mmengine's load_from_http: rank 0 downloads while the others wait at a barrier, so a
    # rank 0 that failed would leave them waiting. Distributed, the file is fetched before
    # mmengine loads, and rank 0 raises after the barrier like the others (rank 0 of 2 here).
    from hseg_mm.models.segmentors import pretrained
    barriers = []
    monkeypatch.setattr(pretrained, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(pretrained, 'barrier', lambda: barriers.append(1))
    url = weight_url('open-mmlab://resnet18_v1c')
    loaded = []
    with pytest.raises(FileNotFoundError, match=r"'open-mmlab://resnet18_v1c' \(config key "
                                                r'model.pretrained\) could not be downloaded'):
        with pretrained.named_weight_errors([('model.pretrained', 'open-mmlab://resnet18_v1c')]):
            loaded.append(1)  # mmengine's loading: never reached
    assert loaded == [] and barriers == [1] and no_download == [url]
