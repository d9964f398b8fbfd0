"""tools/model_converters/hierahyp2hseg.py: a tum-vision/hierahyp checkpoint, converted and
loaded into the configs/hssn_release/hierahyp_*.py model, predicts what hierahyp's own test
predicts from the same weights, at both levels of the Cityscapes tree.

No hierahyp file is downloaded: the reference model is built from mmseg's stock modules
(ResNetV1d, DepthwiseSeparableASPPHead, FCNHead; HRNet, FCNHead, OCRHead) with random
weights in hierahyp's key layout, given the training-only keys its heads and segmentor add
(`proj_head.*`, `step`, `ball.isp_c`) and the segmentor's `offsets` / `normals`, and saved
as its mmcv runner saved it. Up to the head's last feature the reference is mmseg's forward
(hierahyp's heads are mmseg 0.x's, plus a projection no output reads); from there on it is
written here from hierahyp's code: `conv_seg`, or geoopt's `expmap0` and the equations of
`hyp_mlr_torch` (mmseg/layers.py); the logits resized to the input and to the original
image (`encode_decode`, `whole_inference`); the softmax and the argmaxes of its test
(test_helpers/metric_helpers.py: `pred_childred` for the 19 leaves, `infer_parents` for the
7 parents). The converter renames no backbone or neck key, so these models are narrow
(ResNetV1d-18 and narrow heads; a one-block HRNet with 8-64 channels) on 64 x 64 images;
the full-size layouts (ResNetV1d-101, HRNetV2-W48, 512-d features) are checked key by key
against the four configs' models, and the full-size hyperbolic OCRNet-HR48 runs once.
"""
import math
import os.path as osp
import subprocess
import sys

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import geoopt
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from hseg_mm.engine import apply_hierarchy
from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.decode_heads import PoincareClassifier, poincare_mlr
from tool_helpers import load_tool  # noqa: E402  (tests/tools is on the path, as pytest puts it)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/model_converters/hierahyp2hseg.py'
hierahyp2hseg = load_tool(TOOL, 'hierahyp2hseg')
init_default_scope('mmseg')

ARCH = dict(deeplabv3plus='deeplabv3plus', ocrnet='ocrnet_hr48')
SPACES = ('euclidean', 'hyperbolic')
CASES = [(m, s) for m in ARCH for s in SPACES]


def config_path(model: str, space: str) -> str:
    return f'configs/hssn_release/hierahyp_{ARCH[model]}_cityscapes_{space}.py'


TREE = ClassHierarchy('cityscapes')
# hierahyp's 7 parents over the 19 trainIds, in its order (metric_helpers.py
# `infer_parents`, `transform_l2_label`): flat, construction, object, nature, sky, human,
# vehicle. The `cityscapes` tree's level 0 lists them in this order (by smallest trainId).
PARENT_GROUPS = [(0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 13), (13, 19)]
CITYSCAPES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
              'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
              'truck', 'bus', 'train', 'motorcycle', 'bicycle')

# Narrow widths of the test models (the configs: C5 2048, C1 256, C4 1024 in; 512 / 48 /
# 256 out; HRNetV2-W48's 48-384 channels, OCR 512 / 256).
C5, C1, C4 = 512, 64, 256  # ResNetV1d-18's stage outputs read by the heads
HEAD, C1_OUT, AUX = 32, 16, 16
HR = [8, 16, 32, 64]
OCR, OCR_MID = 32, 16
TINY_HRNET = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ),
                num_channels=(16, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(1, 1),
                num_channels=tuple(HR[:2])),
    stage3=dict(num_modules=1, num_branches=3, block='BASIC', num_blocks=(1, 1, 1),
                num_channels=tuple(HR[:3])),
    stage4=dict(num_modules=1, num_branches=4, block='BASIC', num_blocks=(1, 1, 1, 1),
                num_channels=tuple(HR)))
HRNET_W48 = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ),
                num_channels=(64, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4),
                num_channels=(48, 96)),
    stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                num_channels=(48, 96, 192)),
    stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                num_channels=(48, 96, 192, 384)))
FULL = dict(deeplabv3plus=dict(depth=101, c5=2048, c1=256, c4=1024, head=512, c1_out=48,
                               aux=256),
            ocrnet=dict(extra=HRNET_W48, hr=[48, 96, 192, 384], ocr=512, ocr_mid=256))
NARROW = dict(deeplabv3plus=dict(depth=18, c5=C5, c1=C1, c4=C4, head=HEAD, c1_out=C1_OUT,
                                 aux=AUX),
              ocrnet=dict(extra=TINY_HRNET, hr=HR, ocr=OCR, ocr_mid=OCR_MID))


def the_image() -> torch.Tensor:
    """The one 64 x 64 image every comparison runs on (and the weights are scaled on)."""
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(10))


# ------------------------------------------------------------ hierahyp's computation
def hyp_mlr(x: torch.Tensor, c: float, P: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """hierahyp's `hyp_mlr_torch` (mmseg/layers.py), from its equations: x (N, h, w, D)
    on the ball, P the offsets and A the normals (K, D) -> logits (N, h, w, K).

    z = (-P) (+) x written as alpha (-P) + beta x; |z| projected to (1 - 1e-3) / sqrt(c)
    (PROJ_EPS), <z, A/|A|> scaled with it; logit = 2 |A| / sqrt(c) asinh(sqrt(c) <z, A/|A|>
    * 2 / (1 - c |z|^2)); EPS = 1e-15 floors as there.
    """
    eps, max_norm = 1e-15, (1 - 1e-3) / math.sqrt(c)
    xx = x.pow(2).sum(-1, keepdim=True)                          # |x|^2
    pp = P.pow(2).sum(1)                                         # |-P|^2, (K,)
    px = torch.einsum('nhwd,kd->nhwk', x, -P)                    # <x, -P>
    a_norm = A.norm(dim=1)
    a_unit = F.normalize(A, p=2, dim=1)
    alpha = (1 + 2 * c * px + c * xx) / \
        torch.clamp_min(1 + 2 * c * px + c * xx * c * pp, eps)   # A / D
    beta = (1 - c * pp) / torch.clamp_min(1 + 2 * c * px + c * xx * c * pp, eps)  # B / D
    zz = alpha ** 2 * pp + beta ** 2 * xx + 2 * alpha * beta * px  # |z|^2
    scale = torch.where(zz.sqrt() > max_norm, max_norm / torch.clamp_min(zz.sqrt(), eps),
                        torch.ones_like(zz))
    zz = torch.where(zz.sqrt() < max_norm, zz, torch.full_like(zz, max_norm ** 2))
    z_dot_a = (beta * torch.einsum('nhwd,kd->nhwk', x, a_unit)
               + alpha * (-P * a_unit).sum(1)) * scale
    lam = 2 / torch.clamp_min(1 - c * zz, eps)
    return 2 / math.sqrt(c) * a_norm * torch.asinh(math.sqrt(c) * z_dot_a * lam)


def last_feature(ref: nn.Module, model: str, x: torch.Tensor) -> tuple:
    """(the classifying head, its last feature (N, C, h, w)): hierahyp's forwards
    (`DepthwiseSeparableASPPContrastHead.forward` to `sep_bottleneck`; `OCRHead.forward`
    to `object_context_block`, its soft regions the FCN stage's 19 logits)."""
    feats = ref.extract_feat(x)
    if model == 'deeplabv3plus':
        head = ref.decode_head
        f = head._transform_inputs(feats)
        aspp = [F.interpolate(head.image_pool(f), size=f.shape[2:], mode='bilinear',
                              align_corners=False)] + head.aspp_modules(f)
        out = head.bottleneck(torch.cat(aspp, dim=1))
        c1 = head.c1_bottleneck(feats[0])
        out = F.interpolate(out, size=c1.shape[2:], mode='bilinear', align_corners=False)
        return head, head.sep_bottleneck(torch.cat([out, c1], dim=1))
    regions = ref.decode_head[0](feats)
    head = ref.decode_head[1]
    f = head.bottleneck(head._transform_inputs(feats))
    return head, head.object_context_block(f, head.spatial_gather_module(f, regions))


def hierahyp_test(ref: nn.Module, model: str, space: str, weights: dict, x: torch.Tensor,
                  ori_shape: tuple) -> tuple:
    """hierahyp's test of one image: (leaf probabilities (N, 19, H, W), parent map, leaf
    map (N, H, W)) at ori_shape."""
    head, feat = last_feature(ref, model, x)
    if space == 'euclidean':
        logits = head.conv_seg(feat)  # `cls_seg`: dropout (off in eval), conv_seg
    else:
        # `ball.expmap0(output)` on (N, h, w, C): geoopt's, projected into the ball
        embedded = geoopt.PoincareBall(c=1.0).expmap0(feat.permute(0, 2, 3, 1))
        logits = hyp_mlr(embedded, 1.0, weights['offsets'],
                         weights['normals']).permute(0, 3, 1, 2)
    # encode_decode: to the input; whole_inference (rescale=True): to ori_shape
    logits = F.interpolate(logits, size=x.shape[2:], mode='bilinear', align_corners=False)
    logits = F.interpolate(logits, size=ori_shape, mode='bilinear', align_corners=False)
    probs = logits.softmax(dim=1)  # pred_childred / infer_parents: softmax(logits / T), T = 1
    parents = torch.stack([probs[:, a:b].sum(1) for a, b in PARENT_GROUPS], dim=1)
    return probs, parents.argmax(dim=1), probs.argmax(dim=1)


# ------------------------------------------------------------ the reference model
def reference_model(model: str, size: dict, seed: int = 0) -> nn.Module:
    """hierahyp's model from mmseg's stock modules (names as mmseg 0.x saved them)."""
    torch.manual_seed(seed)
    norm = dict(type='BN', requires_grad=True)
    if model == 'deeplabv3plus':
        cfg = dict(
            type='EncoderDecoder',
            backbone=dict(type='ResNetV1d', depth=size['depth'], num_stages=4,
                          out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                          strides=(1, 2, 1, 1), norm_cfg=norm, norm_eval=False,
                          style='pytorch', contract_dilation=True),
            decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=size['c5'],
                             in_index=3, channels=size['head'], dilations=(1, 12, 24, 36),
                             c1_in_channels=size['c1'], c1_channels=size['c1_out'],
                             dropout_ratio=0.1, num_classes=19, norm_cfg=norm,
                             align_corners=False),
            auxiliary_head=dict(type='FCNHead', in_channels=size['c4'], in_index=2,
                                channels=size['aux'], num_convs=1, concat_input=False,
                                dropout_ratio=0.1, num_classes=19, norm_cfg=norm,
                                align_corners=False),
            test_cfg=dict(mode='whole'))
    else:
        hr = size['hr']
        cfg = dict(
            type='CascadeEncoderDecoder', num_stages=2,
            backbone=dict(type='HRNet', norm_cfg=norm, norm_eval=False, extra=size['extra']),
            decode_head=[
                dict(type='FCNHead', in_channels=hr, channels=sum(hr), in_index=(0, 1, 2, 3),
                     input_transform='resize_concat', kernel_size=1, num_convs=1,
                     concat_input=False, dropout_ratio=-1, num_classes=19, norm_cfg=norm,
                     align_corners=False),
                dict(type='OCRHead', in_channels=hr, in_index=(0, 1, 2, 3),
                     input_transform='resize_concat', channels=size['ocr'],
                     ocr_channels=size['ocr_mid'], dropout_ratio=-1, num_classes=19,
                     norm_cfg=norm, align_corners=False)],
            test_cfg=dict(mode='whole'))
    return MODELS.build(cfg)


def randomise(ref: nn.Module, model: str, space: str, seed: int, batches: int = 3,
              spread: float = 4.0) -> dict:
    """Random weights in place and the segmentor's `offsets` / `normals` as the run would
    have left them; returns those two.

    BN statistics are measured on random images (cumulative averages) with random affine
    terms: at mmseg's init with made-up statistics the features come out almost flat
    across pixels and every pixel gets the same leaf. Then the classifier is scaled so the
    test image's logits vary by about 4 across pixels (maps with many leaves). Hyperbolic:
    the last BN (before the ReLU that ends the feature) is scaled so that features have
    norm about 1 and land inside the ball (|x| ~ tanh 1), where both float32 forms of
    the MLR are accurate to 1e-6 (`test_mlr_equals_hierahyp_where_float32_is_not_exact`
    covers the boundary, in float64); the offsets get norms up to 0.9.
    """
    torch.manual_seed(seed)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    ref.train()
    with torch.no_grad():
        for _ in range(batches):
            x = torch.randn(2, 3, 64, 64)
            last_feature(ref, model, x)
            if model == 'deeplabv3plus':
                ref.auxiliary_head(ref.extract_feat(x))
    ref.eval()
    head = ref.decode_head if model == 'deeplabv3plus' else ref.decode_head[1]
    probe = the_image()
    if space == 'euclidean':
        seg = head.conv_seg
        seg.weight.data.normal_(0, 1)
        with torch.no_grad():
            logits = F.conv2d(last_feature(ref, model, probe)[1], seg.weight)
        seg.weight.data *= spread / logits.std(dim=(2, 3)).mean()
        # each class's mean logit over the image levelled (OCR's features share a large
        # common part that would otherwise give one class every pixel), plus some noise
        seg.bias.data = -logits.mean(dim=(0, 2, 3)) * spread / logits.std(dim=(2, 3)).mean() + \
            torch.randn(19) * 0.5
        # BaseSegmentor's initial values, untouched by a Euclidean run
        ball = geoopt.PoincareBall(c=1.0)
        return dict(offsets=torch.zeros(19, seg.in_channels),
                    normals=ball.expmap0(torch.randn(19, seg.in_channels) * 1e-5))
    last = head.sep_bottleneck[-1].pointwise_conv if model == 'deeplabv3plus' \
        else head.object_context_block.bottleneck
    with torch.no_grad():
        median = last_feature(ref, model, probe)[1].norm(dim=1).median()
    # ReLU(s BN(y)) = s ReLU(BN(y)): the feature's norm scales by s
    last.norm.weight.data /= median
    last.norm.bias.data /= median
    ball = geoopt.PoincareBall(c=1.0)
    with torch.no_grad():
        x = ball.expmap0(last_feature(ref, model, probe)[1].permute(0, 2, 3, 1))
    # hyperplanes in random directions through points near the features' mean (each
    # class then wins somewhere: OCR's features share a large common part, about which
    # they vary by ~0.1), each normal scaled to a spread of 4
    mean = x.mean(dim=(0, 1, 2))
    scatter = (x - mean).norm(dim=-1).median()
    offsets = ball.projx(mean + F.normalize(torch.randn(19, x.shape[-1]), dim=1) *
                         torch.rand(19, 1) * scatter * 0.2)
    normals = torch.randn(19, x.shape[-1])
    std = hyp_mlr(x, 1.0, offsets, normals).std(dim=(0, 1, 2))
    return dict(offsets=offsets, normals=normals * spread / std[:, None])


def save_as_hierahyp(ref: nn.Module, model: str, weights: dict, path: str) -> None:
    """hierahyp's mmcv runner's layout (`save_checkpoint`: meta, state_dict, the last
    optimiser's state), with the keys its heads and segmentor add to mmseg's."""
    state_dict = ref.state_dict()
    # every head's ProjectionHead 'convmlp' (conv, BN, ReLU, conv to 256) and `step`
    # buffer; DeepLabV3+'s reads C5 (dim_in=2048 in its code), the FCN and OCR heads'
    # dim_in=384
    for head in hierahyp2hseg.HEADS[model]:
        dim = 2048 if head == 'decode_head' else 384
        prefix = f'{head}.proj_head.proj'
        state_dict[f'{prefix}.0.weight'] = torch.randn(dim, dim, 1, 1)
        state_dict[f'{prefix}.0.bias'] = torch.randn(dim)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            state_dict[f'{prefix}.1.{name}'] = torch.rand(dim)
        state_dict[f'{prefix}.1.num_batches_tracked'] = torch.tensor(80000)
        state_dict[f'{prefix}.3.weight'] = torch.randn(256, dim, 1, 1)
        state_dict[f'{prefix}.3.bias'] = torch.randn(256)
        state_dict[f'{head}.step'] = torch.tensor([80000.0])
    # BaseSegmentor: gt.PoincareBall(c=1.0) (geoopt keeps softplus^-1(c)), offsets, normals
    state_dict['ball.isp_c'] = geoopt.PoincareBall(c=1.0).isp_c.detach().clone()
    state_dict['offsets'] = weights['offsets']
    state_dict['normals'] = weights['normals']
    torch.save(dict(meta=dict(mmseg_version='0.16.0+229e176', config='...', CLASSES=CITYSCAPES,
                              iter=80000, epoch=1, mmcv_version='1.7.0', time='...'),
                    state_dict=state_dict,
                    optimizer=dict(state={}, param_groups=[dict(lr=0.001, name='normals')])),
               path)


def hseg_model(model: str, space: str, size: dict, inference: str = 'hierahyp') -> nn.Module:
    """The configs/hssn_release/hierahyp_* model at the reference's widths."""
    cfg = Config.fromfile(osp.join(ROOT, config_path(model, space)))
    apply_hierarchy(cfg, check_paths=False)
    m = cfg.model
    if model == 'deeplabv3plus':
        m.backbone.depth = size['depth']
        m.decode_head.update(in_channels=size['c5'], channels=size['head'],
                             c1_in_channels=size['c1'], c1_channels=size['c1_out'],
                             inference=inference)
        m.auxiliary_head.update(in_channels=size['c4'], channels=size['aux'])
    else:
        m.backbone.extra = size['extra']
        m.decode_head[0].update(in_channels=size['hr'], channels=sum(size['hr']))
        m.decode_head[1].update(in_channels=size['hr'], channels=size['ocr'],
                                ocr_channels=size['ocr_mid'], inference=inference)
    return revert_sync_batchnorm(MODELS.build(m)).eval()


def predict(model: nn.Module, x: torch.Tensor, ori_shape: tuple) -> SegDataSample:
    sample = SegDataSample(metainfo=dict(img_shape=tuple(x.shape[2:]), ori_shape=ori_shape,
                                         pad_shape=tuple(x.shape[2:])))
    with torch.no_grad():
        return model.predict(x, [sample])[0]


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(model, space) -> (reference model, its offsets / normals, converted checkpoint)."""
    out = {}
    folder = tmp_path_factory.mktemp('hierahyp')
    for i, (model, space) in enumerate(CASES):
        ref = reference_model(model, NARROW[model], seed=i)
        weights = randomise(ref, model, space, seed=i)
        src, dst = str(folder / f'{model}_{space}_src.pth'), str(folder / f'{model}_{space}.pth')
        save_as_hierahyp(ref, model, weights, src)
        checkpoint = torch.load(src, map_location='cpu', weights_only=False)
        # the classifier is read from the file (no space given)
        torch.save(hierahyp2hseg.convert_checkpoint(checkpoint, TREE, model, source=src), dst)
        out[model, space] = ref, weights, dst
    return out


# original sizes: as the input (the test pipeline keeps the size, as for Cityscapes at
# 2048x1024), and a rescaled image (the pipeline shrank a 96 x 80 image to 64 x 64)
@pytest.mark.parametrize('ori_shape', [(64, 64), (96, 80)])
@pytest.mark.parametrize('model,space', CASES)
def test_converted_predicts_as_hierahyp(model, space, ori_shape, converted):
    ref, weights, path = converted[model, space]
    assert torch.load(path, weights_only=False)['meta']['hierahyp_space'] == space
    net = hseg_model(model, space, NARROW[model])
    # strict: every key of the hseg-mm model is in the file and no other
    load_checkpoint(net, path, map_location='cpu', strict=True)
    x = the_image()
    with torch.no_grad():
        probs, parent, leaf = hierahyp_test(ref, model, space, weights, x, ori_shape)
    # the weights give maps, not one class everywhere
    assert leaf.unique().numel() >= 4 and parent.unique().numel() >= 2
    result = predict(net, x, ori_shape)
    # the 'hierahyp' rule: the same leaf softmax at the original size (1e-5: float32
    # rounding of two orders of the same sums), the leaf argmax, and the parents'
    # argmax of summed probabilities
    assert result.seg_logits.data.shape == probs[0].shape
    assert torch.allclose(result.seg_logits.data, probs[0], atol=1e-5)
    assert torch.equal(result.pred_sem_seg.data[0], leaf[0])
    assert torch.equal(result.pred_level_seg.data, torch.stack([parent[0], leaf[0]]))


def test_rule_is_needed_where_flat_and_level_argmax_part(converted):
    # The same converted weights under the two rules next to 'hierahyp':
    # - 'flat' takes each parent from the leaf argmax; hierahyp argmaxes the summed
    #   children, which picks another parent somewhere on these weights (a leaf that
    #   wins alone against a parent whose children together outweigh it);
    # - 'level_argmax' is the same argmaxes, with the softmax taken before the resize to
    #   the original image: at a rescaled size its probabilities are off by more than the
    #   1e-5 above (a softmax does not commute with bilinear resizing).
    ref, weights, path = converted['deeplabv3plus', 'euclidean']
    x = the_image()
    with torch.no_grad():
        probs, parent, _ = hierahyp_test(ref, 'deeplabv3plus', 'euclidean', weights, x,
                                         (96, 80))
    flat = hseg_model('deeplabv3plus', 'euclidean', NARROW['deeplabv3plus'], 'flat')
    load_checkpoint(flat, path, map_location='cpu', strict=True)
    assert (predict(flat, x, (96, 80)).pred_level_seg.data[0] != parent[0]).any()
    flat.decode_head.inference = 'level_argmax'
    scores = predict(flat, x, (96, 80)).seg_logits.data
    assert (scores - probs[0]).abs().max() > 1e-4


def test_mlr_equals_hierahyp_where_float32_is_not_exact():
    # hierahyp's logit against the classifier's in float64 (poincare_mlr with the normals
    # PoincareClassifier makes from its tangents, (1 - c|p|^2) t): the same function
    # everywhere, the boundary included, to float64 rounding. Real features are long
    # (a 512-d ReLU output): expmap0 puts them at the float32 boundary 1 - 4e-3, here
    # from norms 0.5 to 30, against offsets up to norm 0.996 (geoopt's bound).
    torch.manual_seed(0)
    ball = geoopt.PoincareBall(c=1.0)
    u = F.normalize(torch.randn(2, 16, 16, 64), dim=-1) * torch.empty(2, 16, 16, 1).uniform_(
        0.5, 30)
    x = ball.expmap0(u)  # float32, as hierahyp's
    offsets = ball.projx(F.normalize(torch.randn(19, 64), dim=1) * torch.rand(19, 1) ** 0.3)
    normals = torch.randn(19, 64)
    x64, p64, t64 = x.double(), offsets.double(), normals.double()
    expected = hyp_mlr(x64, 1.0, p64, t64)
    a64 = (1 - p64.pow(2).sum(1, keepdim=True)) * t64
    got = poincare_mlr(x64.permute(0, 3, 1, 2), p64, a64, 1.0, mobius_eps=1e-3)
    assert torch.allclose(got.permute(0, 2, 3, 1), expected, rtol=1e-9, atol=1e-9)
    # hierahyp projects the Moebius sum z = (-p) (+) x for a share of these pairs (2/3
    # here: most features sit at the boundary); there Ganea's formula alone
    # (mobius_eps=None) gives other logits, typically by several units
    z_norm = ball.mobius_add(-p64, x64.unsqueeze(-2)).norm(dim=-1)
    projected = z_norm > 1 - 1e-3
    assert 0.01 < projected.double().mean() < 0.99
    plain = poincare_mlr(x64.permute(0, 3, 1, 2), p64, a64, 1.0).permute(0, 2, 3, 1)
    assert torch.allclose(plain[~projected], expected[~projected], rtol=1e-9, atol=1e-9)
    assert (plain[projected] - expected[projected]).abs().median() > 1
    # In float32 neither is exact at the boundary: hierahyp's own |z|^2 is a sum of terms
    # of order 1 whose 1 - |z|^2 is ~1e-3, and its logits (up to ~110 here) come out
    # ~3e-3 off the float64 value; the classifier, which gets 1 - c|z|^2 as a product,
    # ~4e-4. So on real features the two can part at near-ties of their own rounding
    # (not checked to 1e-5 here); the converted model is the closer to hierahyp's maths.
    classifier = PoincareClassifier(64, 19, c=1.0, mobius_eps=1e-3)
    with torch.no_grad():
        classifier.points.copy_(offsets)
        classifier.tangents.copy_(normals)
        ours = classifier(u.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).double()
    theirs = hyp_mlr(x, 1.0, offsets, normals).double()
    assert (ours - expected).abs().max() <= (theirs - expected).abs().max()


def test_detects_the_classifier_and_refuses_what_does_not_fit(converted):
    ref, weights, _ = converted['deeplabv3plus', 'hyperbolic']
    state = ref.state_dict()
    state.update(offsets=weights['offsets'], normals=weights['normals'])
    assert hierahyp2hseg.detect_space(state) == 'hyperbolic'
    # BaseSegmentor's initial values: offsets 0, normals of norm ~2.3e-4 -> Euclidean
    euclidean = dict(state, offsets=torch.zeros(19, HEAD),
                     normals=geoopt.PoincareBall(c=1.0).expmap0(torch.randn(19, HEAD) * 1e-5))
    assert hierahyp2hseg.detect_space(euclidean) == 'euclidean'
    # offsets of a run whose head was 64 wide, in a file whose conv_seg reads 32 channels
    with pytest.raises(hierahyp2hseg.ConversionError,
                       match=r'x.pth: offsets has shape \(19, 64\), but deeplabv3plus on the '
                             r'tree \(19 leaves\): one per leaf, as wide as '
                             r'decode_head.conv_seg\'s input needs \(19, 32\)'):
        hierahyp2hseg.convert_hierahyp(dict(state, offsets=torch.zeros(19, 64)), TREE,
                                       'deeplabv3plus', 'hyperbolic', 'x.pth')
    # an HSSN release file (26 node channels) is not hierahyp's 19 leaves
    hssn = dict(state, **{'decode_head.conv_seg.weight': torch.zeros(26, HEAD, 1, 1)})
    with pytest.raises(hierahyp2hseg.ConversionError,
                       match=r'decode_head.conv_seg.weight has shape \(26, 32, 1, 1\), but '
                             r'deeplabv3plus on the tree \(19 leaves\) needs \(19, 32, 1, 1\)'):
        hierahyp2hseg.convert_hierahyp(hssn, TREE, 'deeplabv3plus', 'euclidean', 'x.pth')
    # a DeepLabV3+ file converted as OCRNet
    with pytest.raises(hierahyp2hseg.ConversionError,
                       match="no key 'decode_head.1.conv_seg.weight'.*wrong --model"):
        hierahyp2hseg.convert_hierahyp(state, TREE, 'ocrnet', 'euclidean', 'x.pth')


def test_full_size_layouts_fit_the_configs():
    # hierahyp's published layout at full size (ResNetV1d-101 with its 2048-d projection,
    # HRNetV2-W48, 512-d features and 19 x 512 offsets / normals), converted, has exactly
    # the keys and shapes of each config's model: Euclidean 25 conv_seg rows (19 leaves +
    # 6 parents of the `cityscapes` tree), hyperbolic a 19 x 512 classifier. No forward.
    for model in ARCH:
        ref = reference_model(model, FULL[model])
        for space in SPACES:
            if space == 'euclidean':
                weights = dict(offsets=torch.zeros(19, 512),
                               normals=torch.full((19, 512), 1e-5))
            else:
                weights = dict(offsets=torch.rand(19, 512) * 0.01, normals=torch.randn(19, 512))
            state = ref.state_dict()
            state.update(weights, **{f'{h}.step': torch.ones(1)
                                     for h in hierahyp2hseg.HEADS[model]})
            state['ball.isp_c'] = torch.tensor(0.5413)
            out = hierahyp2hseg.convert_hierahyp(state, TREE, model, source='full.pth')
            config = config_path(model, space)
            hierahyp2hseg.check_against_model(out, hierahyp2hseg.config_model_state(config),
                                              'full.pth', config)
            head = hierahyp2hseg.CLASSIFYING_HEAD[model]
            if space == 'euclidean':
                rows = out[f'{head}.conv_seg.weight']
                assert rows.shape == (25, 512, 1, 1)
                # leaf l's node holds hierahyp's row l; the parents' rows are zero
                assert torch.equal(rows[TREE.leaf_nodes], state[f'{head}.conv_seg.weight'])
                parents = [v for v in range(TREE.num_nodes) if v not in TREE.leaf_nodes]
                assert not rows[parents].any()
            else:
                assert torch.equal(out[f'{head}.classifier.points'], weights['offsets'])
                assert torch.equal(out[f'{head}.classifier.tangents'], weights['normals'])
        del ref


def test_full_size_hyperbolic_ocrnet_once(tmp_path):
    # HRNetV2-W48 OCRNet at full width, hyperbolic, one 64 x 64 image at its own size: the
    # narrow models above stand in for it everywhere else. Its 512-d features vary little
    # across this image, so the normals that give logits a spread of 4 are long (~370) and
    # scale both float32 MLRs' rounding (~2e-4 off the float64 logits, either of them);
    # a spread of 1 (normals ~90, still all 19 leaves on the map) keeps the scores within
    # the 1e-5 of the narrow cases.
    ref = reference_model('ocrnet', FULL['ocrnet'], seed=7)
    weights = randomise(ref, 'ocrnet', 'hyperbolic', seed=7, batches=1, spread=1.0)
    src = str(tmp_path / 'src.pth')
    save_as_hierahyp(ref, 'ocrnet', weights, src)
    checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    state = hierahyp2hseg.convert_checkpoint(checkpoint, TREE, 'ocrnet', source=src)
    assert state['meta']['hierahyp_space'] == 'hyperbolic'
    net = hseg_model('ocrnet', 'hyperbolic', FULL['ocrnet'])
    net.load_state_dict(state['state_dict'], strict=True)
    x = the_image()
    with torch.no_grad():
        probs, parent, leaf = hierahyp_test(ref, 'ocrnet', 'hyperbolic', weights, x, (64, 64))
    assert leaf.unique().numel() >= 4 and parent.unique().numel() >= 2
    result = predict(net, x, (64, 64))
    assert torch.allclose(result.seg_logits.data, probs[0], atol=1e-5)
    assert torch.equal(result.pred_level_seg.data, torch.stack([parent[0], leaf[0]]))


def test_command_line(tmp_path, converted):
    # the tool as a command on the narrow Euclidean OCRNet file: drops the training-only
    # keys, the unused offsets / normals and the optimiser; writes the tree
    ref, weights, _ = converted['ocrnet', 'euclidean']
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'converted.pth')
    save_as_hierahyp(ref, 'ocrnet', weights, src)
    run = subprocess.run([sys.executable, osp.join(ROOT, TOOL), src, dst, '--model', 'ocrnet'],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert 'ocrnet, euclidean' in run.stdout
    checkpoint = torch.load(dst, map_location='cpu', weights_only=False)
    assert set(checkpoint) == {'meta', 'state_dict'}
    assert ClassHierarchy(checkpoint['meta']['hierarchy']).same_tree(TREE)
    # every other key kept, plus the tree
    assert set(checkpoint['state_dict']) == set(ref.state_dict()) | {'_extra_state'}
    # --model deeplabv3plus on it: refused, naming the key it lacks
    run = subprocess.run([sys.executable, osp.join(ROOT, TOOL), src, dst, '--model',
                          'deeplabv3plus'], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert run.returncode != 0
    assert "no key 'backbone.stem.0.weight'" in run.stderr
    # --config: this narrow HRNet does not fit HRNetV2-W48's model; the first key that
    # differs, in the state dict's order: the stem's second conv (64 channels in both),
    # then layer1's first bottleneck, 16 planes here, 64 there
    config = config_path('ocrnet', 'euclidean')
    run = subprocess.run([sys.executable, osp.join(ROOT, TOOL), src, dst, '--model', 'ocrnet',
                          '--config', config], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert run.returncode != 0
    assert ('backbone.layer1.0.conv1.weight has shape (16, 64, 1, 1), but the model of '
            f'{config} needs (64, 64, 1, 1)') in run.stderr
