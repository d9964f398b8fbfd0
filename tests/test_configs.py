"""Every shipped config builds, trains one step and predicts on CPU (one test each).

Each model runs at its full size (Swin-B, HRNetV2-W48, ResNet-101) on a 2 x 3 x 64 x 64
batch: SyncBN reverted to BN, pretrained weights off (`skip_pretrained`; a download
fails the test), the model's
`loss` and `predict` called directly (the data preprocessor would pad to 480x480).
One shrink, in this test only: Swin-B's third stage runs 2 blocks instead of 18 (at
full depth it alone took ~17 s here on 2 shared cores); widths, heads and windows stay.
"""
import ast
import glob
import os.path as osp

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.model.utils import revert_sync_batchnorm
from mmseg.registry import MODELS

from hseg_mm.engine import apply_hierarchy
from hseg_mm.testing import seg_data_samples
from hseg_mm.engine.launch import skip_pretrained
from hseg_mm.models.segmentors.pretrained import timm_import_error, weight_url

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))
# A short entry point (configs/hssn_swin.py) that only names a recipe is checked to
# give the recipe's exact config instead of training the same model twice.
THIN = {}
for _path in CONFIGS:
    with open(osp.join(ROOT, _path)) as _f:
        _body = [s for s in ast.parse(_f.read()).body
                 if not (isinstance(s, ast.Assign) and s.targets[0].id == 'custom_imports')]
    if osp.dirname(_path) == 'configs' and len(_body) == 1 and _body[0].targets[0].id == '_base_' \
            and len(_body[0].value.elts) == 1:
        THIN[_path] = osp.normpath(osp.join('configs', _body[0].value.elts[0].value))
MODEL_CONFIGS = [p for p in CONFIGS if p not in THIN]


init_default_scope('mmseg')  # what the Runner does from `default_scope`


TIMM_MISSING = timm_import_error()


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """No test here downloads weights: a recipe that still asks for them fails."""
    def refuse(url, *args, **kwargs):
        raise AssertionError(f'a config test tried to download {url}')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', refuse)  # mmengine's and timm's


def test_every_config_is_found():
    # 3 HSSN + 3 flat recipes and their 6 short entry points (the lead's demo config may add more).
    assert len(CONFIGS) >= 12, CONFIGS


@pytest.mark.parametrize('path', MODEL_CONFIGS)
def test_config_builds_trains_and_predicts(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.custom_imports == dict(imports=['hseg_mm'], allow_failed_imports=False)
    if path.startswith('configs/examples/'):
        # it names the user's tree file, which is not shipped: a 4-level tree instead
        cfg.hierarchy = dict(sky=3, ground=dict(road=0, grass=5), thing=dict(
            vehicle=dict(car=dict(sedan=1, truck=6), bike=4), person=2))
    apply_hierarchy(cfg, check_paths=False)  # what HierarchicalRunner does (no data here)
    if cfg.model.backbone.type == 'TIMMBackbone':
        if TIMM_MISSING:
            pytest.skip(TIMM_MISSING)
        assert cfg.model.get('pretrained') is None  # timm loads its own weights
    pretrained = cfg.model.get('pretrained')
    # As mmseg's recipes: weights by a name mmengine downloads (an open-mmlab:// name its
    # model zoo knows, or an https URL), not a path that exists on one machine only.
    assert pretrained is None or weight_url(pretrained).startswith('https://'), pretrained
    skip_pretrained(cfg)
    if cfg.model.backbone.type == 'SwinTransformer':
        cfg.model.backbone.depths = [2, 2, 2, 2]
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    tree = model.hierarchy  # read by the segmentor from its last decode head

    images = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, tree.num_leaves, (2, 64, 64))
    labels[:, :5] = 255  # padding rows
    model.train()
    losses = model.loss(images, seg_data_samples(labels))
    total = sum(v for k, v in losses.items() if k.startswith('loss') or '.loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the config's optimiser (Riemannian for the hyperbolic recipes) takes a step, and
    # every parameter with a nonzero gradient moves (frozen stages have no gradient)
    from mmengine.optim import build_optim_wrapper
    learning = {n: p.detach().clone() for n, p in model.named_parameters()
                if p.grad is not None and bool(p.grad.abs().sum() > 0)}
    build_optim_wrapper(model, cfg.optim_wrapper).step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    now = dict(model.named_parameters())
    still = [n for n, before in learning.items() if torch.equal(before, now[n].detach())]
    assert learning and not still, f'{len(still)} of {len(learning)} did not move: {still[:3]}'

    model.eval()
    with torch.no_grad():
        results = model.predict(images, seg_data_samples(labels))
    for r in results:
        assert r.seg_logits.data.shape == (tree.num_leaves, 64, 64)
        assert torch.isfinite(r.seg_logits.data).all()
        assert r.pred_level_seg.data.shape == (tree.num_levels, 64, 64)


def _statements(path: str) -> list:
    with open(osp.join(ROOT, path)) as f:
        return [s for s in ast.parse(f.read()).body
                if not (isinstance(s, ast.Assign)
                        and s.targets[0].id in ('_base_', 'custom_imports'))]


@pytest.mark.parametrize('path', [p for p in CONFIGS if osp.basename(p).startswith('flat_')
                                  and osp.dirname(p).endswith(('flat', 'ppp_cpu'))])
def test_flat_recipe_is_one_statement_over_hssn(path):
    statements = _statements(path)
    assert len(statements) == 1 and statements[0].targets[0].id == 'model'
    cfg = Config.fromfile(osp.join(ROOT, path))
    heads = cfg.model.decode_head if isinstance(cfg.model.decode_head, list) \
        else [cfg.model.decode_head]
    for head in heads:
        assert head.inference == 'flat'
        assert [loss.type for loss in head.loss_decode] == ['HierarchicalCrossEntropyLoss']
        assert head.loss_decode[0].levels == [-1]
    hssn = Config.fromfile(osp.join(ROOT, path.replace('flat', 'hssn')))
    assert hssn.model.backbone == cfg.model.backbone
    assert hssn.optim_wrapper == cfg.optim_wrapper and hssn.train_dataloader == cfg.train_dataloader


def test_entry_points_are_thin():
    assert {'configs/hssn_swin.py', 'configs/hssn_hrnet_ocr.py',
            'configs/hssn_r101_deeplabv3plus.py', 'configs/flat_swin.py',
            'configs/flat_hrnet_ocr.py', 'configs/flat_r101_deeplabv3plus.py',
            'configs/hssn_timm.py'} <= set(THIN)


@pytest.mark.parametrize('path', sorted(THIN))
def test_entry_point_gives_its_recipe(path):
    assert THIN[path] in MODEL_CONFIGS
    entry = Config.fromfile(osp.join(ROOT, path))
    recipe = Config.fromfile(osp.join(ROOT, THIN[path]))
    assert entry.to_dict() == recipe.to_dict()


@pytest.mark.parametrize('path', MODEL_CONFIGS)
def test_schedule_ends_with_training(path):
    """The last iteration-based scheduler ends at `max_iters`: a child that changes the
    base's `iters` variable must restate what the base computed from it (`end=iters` was
    evaluated when the base was parsed), or the poly decay stops early or never ends."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    if cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        pytest.skip('epoch-based')
    schedulers = cfg.param_scheduler if isinstance(cfg.param_scheduler, list) \
        else [cfg.param_scheduler]
    last = schedulers[-1]
    assert not last.get('by_epoch', True), last
    assert last['end'] == cfg.train_cfg.max_iters, (path, last, cfg.train_cfg.max_iters)


def test_lovasz_recipe_is_the_flat_twin_plus_one_term():
    """The child's `loss_decode` list replaces the base's (mmengine merges dicts, not
    lists): leaf CE once, then Lovász at the logits' resolution; all else the flat twin's."""
    lovasz = Config.fromfile(osp.join(ROOT, 'configs/ppp_cpu/flat-lovasz_lite2-fpn_ppp-320_cpu.py'))
    flat = Config.fromfile(osp.join(ROOT, 'configs/ppp_cpu/flat_lite2-fpn_ppp-320_cpu.py'))
    assert [(loss.type, loss.levels) for loss in lovasz.model.decode_head.loss_decode] == [
        ('HierarchicalCrossEntropyLoss', [-1]), ('HierarchicalLovaszLoss', [-1])]
    assert lovasz.model.decode_head.loss_decode[1].loss_resolution == 'logits'
    lovasz.model.decode_head.loss_decode = flat.model.decode_head.loss_decode
    assert lovasz.to_dict() == flat.to_dict()


@pytest.mark.parametrize('path', [p for p in MODEL_CONFIGS if '_lite2-' in p])
def test_lite2_recipes_train_float32_where_bfloat16_is_emulated(path):
    """The Lite2 recipes chose bfloat16 autocast for its speed on AVX512_BF16/AMX CPUs;
    where it is emulated it is slower than float32 (README), so they fall back."""
    wrapper = Config.fromfile(osp.join(ROOT, path)).optim_wrapper
    assert (wrapper.type, wrapper.if_emulated) == ('CPUAmpOptimWrapper', 'float32')


def test_ema_recipe_is_the_lovasz_recipe_at_4900_iterations_plus_ema():
    """What the child changes: the schedule (restated for its `iters`, the base's was
    computed from 1,800) and the hooks list (a list replaces the base's, so the
    visualisation hook is restated beside EMAHook); all else the Lovász recipe's."""
    ema = Config.fromfile(osp.join(ROOT, 'configs/ppp_cpu/flat-lovasz-ema_lite2-fpn_4.9k_ppp-320_cpu.py'))
    lovasz = Config.fromfile(osp.join(ROOT, 'configs/ppp_cpu/flat-lovasz_lite2-fpn_ppp-320_cpu.py'))
    assert ema.train_cfg.max_iters == ema.train_cfg.val_interval == 4900
    assert ema.param_scheduler[1].end == 4900 and ema.default_hooks.checkpoint.interval == 2450
    # EMA from the half-way checkpoint on: 0.998^2450 = 0.7 % of the weight left on it
    assert ema.custom_hooks == lovasz.custom_hooks + [dict(
        type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.002, begin_iter=2450)]
    for key in ('iters', 'param_scheduler', 'train_cfg', 'default_hooks', 'custom_hooks'):
        ema.pop(key), lovasz.pop(key)
    assert ema.to_dict() == lovasz.to_dict()
