"""Hierarchical heads and segmentors: shapes, embedding, loss wiring, inference, errors.

Heads run on tiny random features (N=2, 8 channels, 8x8); the segmentors on a
ResNetV1c-18 DeepLabV3+ / OCR cascade at 2 x 3 x 64 x 64.
"""
import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS

from hseg_mm.models import leaf_scores
from hseg_mm.models.utils.sampled_embedding import SampledEmbedding
from hseg_mm.testing import seg_data_samples

init_default_scope('mmseg')

HSSN_LOSSES = [dict(type='FocalTreeMinLoss'),
               dict(type='TreeTripletLoss', max_samples_per_class=20),
               dict(type='HierarchicalCrossEntropyLoss')]
FLAT_LOSSES = [dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]

# Features: four maps, the first at 16x16 (DeepLabV3+'s c1), the others 8x8.
FEATS = [(8, 16), (8, 8), (8, 8), (16, 8)]
HEADS = {
    'HierarchicalDepthwiseSeparableASPPHead': dict(
        in_channels=16, in_index=3, channels=16, dilations=(1, 2), c1_in_channels=8,
        c1_channels=4),
    'HierarchicalFCNHead': dict(in_channels=16, in_index=3, channels=16, num_convs=1),
    'HierarchicalUPerHead': dict(in_channels=[8, 8, 8, 16], in_index=[0, 1, 2, 3],
                                 channels=16, pool_scales=(1, 2)),
    'HierarchicalOCRHead': dict(in_channels=16, in_index=3, channels=16, ocr_channels=8),
    'HierarchicalFPNHead': dict(in_channels=[8, 8, 8, 16], in_index=[0, 1, 2, 3],
                                feature_strides=[4, 8, 16, 32], channels=16),
    # three blocks for the three skips: up to the 16x16 map's size
    'HierarchicalUNetHead': dict(in_channels=[8, 8, 8, 16], in_index=[0, 1, 2, 3],
                                 decoder_channels=[16, 8, 8]),
}


def feats(n: int = 2):
    torch.manual_seed(0)
    return [torch.randn(n, c, s, s) for c, s in FEATS]


def build_head(name: str, tree, losses=HSSN_LOSSES, **kwargs):
    cfg = dict(type=name, hierarchy=tree, loss_decode=losses, norm_cfg=dict(type='BN'),
               **HEADS[name])
    cfg.update(kwargs)
    return MODELS.build(cfg)


def head_args(head, x):
    """Extra positional input of a cascade head: the previous stage's node logits."""
    if type(head).__name__ == 'HierarchicalOCRHead':
        return (x, torch.randn(x[0].shape[0], head.num_classes, 8, 8))
    return (x, )


def samples(labels: torch.Tensor) -> list:
    return seg_data_samples(labels, with_paths=True)


def random_labels(tree, n=2, size=32):
    torch.manual_seed(1)
    labels = torch.randint(0, tree.num_leaves, (n, size, size))
    labels[:, :3] = 255
    return labels


# ------------------------------------------------------------------ heads
@pytest.mark.parametrize('name', HEADS)
@pytest.mark.parametrize('tree_name', ['person_tree', 'four_level_tree'])
def test_head_scores_nodes_and_predicts_leaves(name, tree_name, request):
    tree = request.getfixturevalue(tree_name)
    head = build_head(name, tree)
    x = feats()
    head.train()
    logits = head(*head_args(head, x))
    # person tree: 10 nodes (background, body, upper_body, lower_body, 6 parts); 4-level: 12
    assert head.num_classes == tree.num_nodes == logits.shape[1]
    assert logits.shape[0] == 2 and logits.shape[2:] in ((8, 8), (16, 16))

    head.eval()
    args = head_args(head, x)
    metas = [dict(img_shape=(32, 32), pad_shape=(32, 32))] * 2
    with torch.no_grad():
        leaf = head.predict(*args, metas, None)
        expected = leaf_scores(
            F.interpolate(head(*args), (32, 32), mode='bilinear', align_corners=False),
            tree, 'tree_min')
    assert leaf.shape == (2, tree.num_leaves, 32, 32)
    torch.testing.assert_close(leaf, expected)


@pytest.mark.parametrize('name', HEADS)
def test_head_loss_keys_and_embedding(name, person_tree):
    head = build_head(name, person_tree)
    seen = {}
    triplet = head.loss_decode[1]
    forward = triplet.forward

    def spy(*args, **kwargs):
        seen['embedding'] = kwargs['embedding']
        return forward(*args, **kwargs)

    triplet.forward = spy
    head.train()
    x = feats()
    labels = random_labels(person_tree)
    losses = head.loss(*head_args(head, x), samples(labels), None)
    assert set(losses) == {'loss_focal_tree_min', 'loss_tree_triplet', 'loss_hier_ce', 'acc_seg'}
    assert all(torch.isfinite(v).all() for v in losses.values())
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert head.projection[1].weight.grad is not None  # the triplet loss trains it

    emb = seen['embedding']  # single-process BN in training: evaluated at the sampled pixels only
    assert isinstance(emb, SampledEmbedding) and emb.statistics == 'all'
    assert emb.shape[:2] == (2, 256) and emb.shape[2:] in ((8, 8), (16, 16))
    every_pixel = emb.gather(torch.arange(emb.shape.numel() // 256))  # (N*h*w, 256)
    torch.testing.assert_close(every_pixel.norm(dim=1), torch.ones(len(every_pixel)))
    # nothing of the step is kept on the module (no hidden state between calls)
    assert not [k for k, v in vars(head).items() if isinstance(v, (torch.Tensor, SampledEmbedding))]


@pytest.mark.parametrize('name', list(HEADS))
def test_forward_is_the_mmseg_heads_forward(name, person_tree):
    """The hierarchical head's forward (`cls_seg(_forward_feature(...))`) gives what the
    mmseg head's own forward gives on the same module, so trained models predict alike;
    and `loss` scores the same logits as the forward (in eval mode: BN on running
    statistics, so two passes agree)."""
    head = build_head(name, person_tree).eval()
    mmseg_head = [c for c in type(head).__mro__[1:] if 'forward' in vars(c)
                  and c.__module__.startswith('mmseg') or c.__name__ == 'UNetHead'][0]
    args = head_args(head, feats())
    with torch.no_grad():
        torch.testing.assert_close(head(*args), mmseg_head.forward(head, *args), rtol=0, atol=0)
        seen = []
        head.loss_by_feat = lambda logits, samples, embedding: seen.append(logits) or {}
        head.loss(*args, samples(random_labels(person_tree)), None)
        torch.testing.assert_close(seen[0], head(*args), rtol=0, atol=0)


def test_embedding_only_in_loss_and_when_needed(person_tree):
    flat = build_head('HierarchicalFCNHead', person_tree, losses=FLAT_LOSSES, inference='flat')
    assert flat.projection is None  # no loss takes an embedding: no unused parameters
    hssn = build_head('HierarchicalFCNHead', person_tree)
    calls = []
    hssn.projection[-1].register_forward_hook(lambda *a: calls.append(1))  # both paths end here
    hssn.eval()
    hssn.predict(feats(), [dict(img_shape=(8, 8))] * 2, None)
    hssn.train()
    hssn(feats())  # a plain forward (no loss) computes no embedding either
    assert calls == []
    hssn.loss(feats(), samples(random_labels(person_tree)), None)
    assert calls == [1]


def test_same_loss_names_are_summed(person_tree):
    # Two focal losses named alike give one key whose value is their sum (as mmseg does).
    head = build_head('HierarchicalFCNHead', person_tree,
                      losses=[dict(type='FocalTreeMinLoss'),
                              dict(type='FocalTreeMinLoss', loss_weight=2.0)])
    head.train()
    torch.manual_seed(0)
    logits = torch.randn(2, person_tree.num_nodes, 8, 8)
    labels = random_labels(person_tree, size=8)
    losses = head.loss_by_feat(logits, samples(labels))
    single = head.loss_decode[0](logits, labels)
    torch.testing.assert_close(losses['loss_focal_tree_min'], 3 * single)


def test_leaf_accuracy_by_hand(person_tree):
    # Node logits +5 on the nodes of one leaf's path, -5 elsewhere: tree_min picks it.
    head = build_head('HierarchicalFCNHead', person_tree, losses=[dict(type='FocalTreeMinLoss')])
    path = person_tree.path_mask_tensor()  # (7 leaves, 10 nodes)
    predicted = torch.tensor([[1, 2], [6, 0]])  # leaf per pixel
    logits = (path[predicted] * 10 - 5).permute(2, 0, 1)[None]  # (1, 10, 2, 2)
    labels = torch.tensor([[[1, 3], [6, 255]]])
    # valid pixels: 3; right: (0,0) head=head, (1,0) lower_leg=lower_leg; wrong: (0,1)
    # -> acc = 2 / 3 = 66.67 %
    acc = head.loss_by_feat(logits, samples(labels))['acc_seg']
    torch.testing.assert_close(acc, torch.tensor([200 / 3]))


def test_loss_resolution_logits_resizes_the_labels(four_level_tree):
    """loss_resolution='logits': the labels go down to the logits' size (nearest: at a
    1/4 head, pixel (i, j) of the logits takes label (4i, 4j)) instead of the logits up
    to the labels' (bilinear, mmseg's way, the default)."""
    tree = four_level_tree
    losses = [dict(type='FocalTreeMinLoss'), dict(type='HierarchicalCrossEntropyLoss')]
    torch.manual_seed(0)
    logits = torch.randn(2, tree.num_nodes, 4, 4)
    labels = random_labels(tree, size=16)  # rows 0-2 ignored: logits row 0 is ignored
    head = build_head('HierarchicalFCNHead', tree, losses=losses, loss_resolution='logits')
    got = head.loss_by_feat(logits, samples(labels))
    small = labels[:, ::4, ::4]
    assert (small[:, 0] == 255).all() and (small[:, 1:] != 255).all()
    for loss in head.loss_decode:
        torch.testing.assert_close(got[loss.loss_name], loss(logits, small))
    default = build_head('HierarchicalFCNHead', tree, losses=losses)
    full = default.loss_by_feat(logits, samples(labels))
    up = F.interpolate(logits, size=(16, 16), mode='bilinear', align_corners=False)
    torch.testing.assert_close(full['loss_focal_tree_min'], default.loss_decode[0](up, labels))
    with pytest.raises(ValueError, match="loss_resolution must be 'label' or 'logits'"):
        build_head('HierarchicalFCNHead', tree, losses=losses, loss_resolution='half')


def test_a_loss_at_its_own_resolution_beside_the_heads(four_level_tree):
    """A loss naming its own `loss_resolution` (Lovász at the logits) is evaluated there
    while the head's other losses stay at the label's size."""
    tree = four_level_tree
    losses = [dict(type='HierarchicalCrossEntropyLoss', levels=[-1]),
              dict(type='HierarchicalLovaszLoss', levels=[-1], loss_resolution='logits')]
    torch.manual_seed(0)
    logits = torch.randn(2, tree.num_nodes, 4, 4)
    labels = random_labels(tree, size=16)
    head = build_head('HierarchicalFCNHead', tree, losses=losses)
    got = head.loss_by_feat(logits, samples(labels))
    ce, lovasz = head.loss_decode
    up = F.interpolate(logits, size=(16, 16), mode='bilinear', align_corners=False)
    torch.testing.assert_close(got['loss_hier_ce'], ce(up, labels))
    torch.testing.assert_close(got['loss_lovasz'], lovasz(logits, labels[:, ::4, ::4]))


def test_projection_at_sampled_pixels_only(person_tree):
    """projection_pixels='sampled' projects only the pixels the triplet loss samples.
    With the projection's batch norm on running statistics (eval mode), that is the
    same computation as projecting every pixel and sampling: equal losses for the same
    sampling seed. In training its batch norm sees only the sampled pixels."""
    losses = [dict(type='TreeTripletLoss', max_samples_per_class=20)]
    heads = {}
    for pixels in ('all', 'sampled'):
        torch.manual_seed(0)
        heads[pixels] = build_head('HierarchicalFCNHead', person_tree, losses=losses,
                                   projection_pixels=pixels)
    heads['sampled'].load_state_dict(heads['all'].state_dict())
    labels = random_labels(person_tree, size=16)
    results = {}
    for pixels, head in heads.items():
        head.train()
        head.projection.eval()  # running statistics: the BN is a fixed affine map
        torch.manual_seed(3)  # the triplet sampling draws from the global generator
        results[pixels] = head.loss(feats(), samples(labels), dict())['loss_tree_triplet']
    assert results['all'] > 0
    torch.testing.assert_close(results['sampled'], results['all'])
    head = heads['sampled']
    head.projection.train()
    loss = head.loss(feats(), samples(labels), dict())['loss_tree_triplet']
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in head.projection.parameters())
    with pytest.raises(ValueError, match="projection_pixels must be 'all' or 'sampled'"):
        build_head('HierarchicalFCNHead', person_tree, losses=losses, projection_pixels='some')


@pytest.mark.parametrize('tree_name', ['person_tree', 'four_level_tree'])
def test_all_pixel_embedding_without_projecting_every_pixel(tree_name, request, monkeypatch):
    """projection_pixels='all' with BN in training projects only the sampled pixels, BN
    statistics from every pixel's moments: the same losses and gradients (to the
    features and every weight) as projecting every pixel, the plain path SyncBN takes."""
    from hseg_mm.models.decode_heads import hierarchical_head_mixin
    tree = request.getfixturevalue(tree_name)
    results = {}
    for path in ('moments', 'every pixel'):
        if path == 'every pixel':
            monkeypatch.setattr(hierarchical_head_mixin, 'full_statistics_supported',
                                lambda projection: False)
        torch.manual_seed(0)
        head = build_head('HierarchicalFCNHead', tree)
        head.train()
        x = [f.requires_grad_() for f in feats()]
        torch.manual_seed(3)  # the triplet sampling draws from the global generator
        losses = head.loss(x, samples(random_labels(tree)), None)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        results[path] = (losses, x[3].grad, {n: p.grad for n, p in head.named_parameters()},
                         head.projection[0].bn.running_var.clone())
    (loss_a, grad_a, params_a, var_a), (loss_b, grad_b, params_b, var_b) = results.values()
    assert loss_a['loss_tree_triplet'] > 0
    for key in loss_a:
        torch.testing.assert_close(loss_a[key], loss_b[key], msg=key)
    torch.testing.assert_close(grad_a, grad_b)
    for name in params_a:
        torch.testing.assert_close(params_a[name], params_b[name], msg=name)
    torch.testing.assert_close(var_a, var_b)


def test_head_bad_arguments(person_tree):
    with pytest.raises(ValueError, match='num_classes=7 but the hierarchy has 10 nodes'):
        build_head('HierarchicalFCNHead', person_tree, num_classes=7)
    with pytest.raises(ValueError, match='CrossEntropyLoss takes no hierarchy'):
        build_head('HierarchicalFCNHead', person_tree, losses=[dict(type='CrossEntropyLoss')])
    with pytest.raises(ValueError, match='no hierarchy'):
        build_head('HierarchicalFCNHead', None)
    with pytest.raises(ValueError, match='unknown inference rule'):
        build_head('HierarchicalFCNHead', person_tree, inference='argmax')
    with pytest.raises(ValueError, match='need the projection embedding'):
        build_head('HierarchicalFCNHead', person_tree, embedding_channels=None)
    with pytest.raises(ValueError, match='pixel samplers'):
        build_head('HierarchicalFCNHead', person_tree, sampler=dict(type='OHEMPixelSampler'))
    with pytest.raises(ValueError, match='another hierarchy'):
        build_head('HierarchicalFCNHead', person_tree,
                   losses=[dict(type='FocalTreeMinLoss', hierarchy='pascal_part_seeds')])
    with pytest.raises(ValueError, match='give loss_decode'):
        MODELS.build(dict(type='HierarchicalFCNHead', hierarchy=person_tree, in_channels=8,
                          channels=8))


# ------------------------------------------------------------- segmentors
def deeplab_r18(hierarchy, inference='tree_min', losses=HSSN_LOSSES, **kwargs):
    """The CPU-sized DeepLabV3+ on ResNetV1c-18 (64x64 inputs)."""
    cfg = dict(
        type='HierarchicalEncoderDecoder',
        hierarchy=hierarchy,
        pretrained=None,
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=dict(type='BN')),
        decode_head=dict(type='HierarchicalDepthwiseSeparableASPPHead', in_channels=512,
                         in_index=3, channels=32, dilations=(1, 6), c1_in_channels=64,
                         c1_channels=8, norm_cfg=dict(type='BN'), inference=inference,
                         loss_decode=losses),
        auxiliary_head=dict(type='FCNHead', in_channels=256, in_index=2, channels=16,
                            num_convs=1, norm_cfg=dict(type='BN'),
                            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    cfg.update(kwargs)
    return MODELS.build(ConfigDict(cfg))


def ocr_r18(hierarchy):
    stage = dict(in_channels=512, in_index=3, norm_cfg=dict(type='BN'))
    return MODELS.build(ConfigDict(
        type='HierarchicalCascadeEncoderDecoder', num_stages=2, hierarchy=hierarchy,
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=dict(type='BN')),
        decode_head=[
            dict(type='HierarchicalFCNHead', channels=16, num_convs=1,
                 loss_decode=[dict(type='FocalTreeMinLoss', loss_weight=0.4)], **stage),
            dict(type='HierarchicalOCRHead', channels=16, ocr_channels=8,
                 loss_decode=HSSN_LOSSES, **stage)],
        train_cfg=dict(), test_cfg=dict(mode='whole')))


def images_and_labels(tree):
    torch.manual_seed(2)
    return torch.randn(2, 3, 64, 64), random_labels(tree, size=64)


def check_levels(results, tree, consistent=True):
    lut = torch.as_tensor(tree.leaf_to_level)  # (D, L)
    for r in results:
        leaf = r.pred_sem_seg.data[0]
        levels = r.pred_level_seg.data
        assert r.seg_logits.data.shape == (tree.num_leaves, 64, 64)
        assert levels.shape == (tree.num_levels, 64, 64) and levels.dtype == torch.long
        # the deepest level's class index is the leaf id, whatever the rule
        assert torch.equal(levels[-1], leaf)
        if consistent:  # level k is the level-k ancestor of the leaf
            assert torch.equal(levels, lut[:, leaf])


@pytest.mark.parametrize('inference', ['tree_min', 'path_sum', 'flat', 'level_argmax',
                                       'hssn_release', 'hssn_mmseg', 'hierahyp'])
def test_encoder_decoder_r18_deeplabv3plus(inference, four_level_tree):
    tree = four_level_tree
    model = deeplab_r18(tree.tree, inference=inference)
    # 'hssn_release' and 'hierahyp' are applied after the resize to the image: the head's
    # predict hands on the 10 node channels, which slide inference allocates
    channels = tree.num_nodes if inference in ('hssn_release', 'hierahyp') \
        else tree.num_leaves
    assert model.num_classes == tree.num_leaves == 7 and model.out_channels == channels
    assert model.auxiliary_head.num_classes == 7  # filled in from the tree
    images, labels = images_and_labels(tree)
    model.train()
    losses = model.loss(images, samples(labels))
    assert set(losses) == {'decode.loss_focal_tree_min', 'decode.loss_tree_triplet',
                           'decode.loss_hier_ce', 'decode.acc_seg', 'aux.loss_ce', 'aux.acc_seg'}
    assert all(torch.isfinite(v).all() for v in losses.values())
    model.eval()
    with torch.no_grad():
        results = model.predict(images, samples(labels))
    check_levels(results, tree, consistent=inference not in ('level_argmax', 'hierahyp'))


@pytest.mark.parametrize('inference', ['tree_min', 'hssn_release'])
def test_slide_inference_allocates_leaf_channels(inference, person_tree):
    # 'hssn_release': the crops' node logits are averaged, as the release's slide_inference
    # averaged its logits before the softmax; the rule then gives leaf scores
    model = deeplab_r18('pascal_person_part', inference=inference,
                        test_cfg=dict(mode='slide', crop_size=(48, 48), stride=(32, 32)))
    model.eval()
    images, labels = images_and_labels(person_tree)
    with torch.no_grad():
        results = model.predict(images, samples(labels))
    check_levels(results, person_tree)


def test_cascade_ocr(person_tree):
    model = ocr_r18('pascal_person_part')
    images, labels = images_and_labels(person_tree)
    model.train()
    losses = model.loss(images, samples(labels))
    assert {'decode_0.loss_focal_tree_min', 'decode_1.loss_focal_tree_min',
            'decode_1.loss_tree_triplet', 'decode_1.loss_hier_ce'} <= set(losses)
    assert model.decode_head[0].projection is None  # stage 0 has no triplet loss
    model.eval()
    with torch.no_grad():
        results = model.predict(images, samples(labels))
    check_levels(results, person_tree)


def test_segmentor_bad_arguments(person_tree):
    with pytest.raises(TypeError, match='needs a hierarchical last decode head'):
        MODELS.build(ConfigDict(
            type='HierarchicalEncoderDecoder', backbone=dict(type='ResNetV1c', depth=18),
            decode_head=dict(type='FCNHead', in_channels=512, channels=8, num_classes=7)))
    with pytest.raises(ValueError, match=r'auxiliary_head\[0\].*num_classes=3'):
        deeplab_r18('pascal_person_part', auxiliary_head=[dict(
            type='FCNHead', in_channels=256, in_index=2, channels=8, num_classes=3)])
    with pytest.raises(ValueError, match=r'auxiliary_head\[0\] \(FCNHead\) is a plain head'
                                         r'.*loss_decode\[1\] \(FocalTreeMinLoss\)'):
        deeplab_r18('pascal_person_part', auxiliary_head=[dict(
            type='FCNHead', in_channels=256, in_index=2, channels=8, loss_decode=[
                dict(type='CrossEntropyLoss'), dict(type='FocalTreeMinLoss')])])
    with pytest.raises(ValueError, match='another hierarchy than model.hierarchy'):
        deeplab_r18('pascal_person_part', decode_head=dict(
            type='HierarchicalFCNHead', hierarchy='pascal_part_seeds', in_channels=512,
            channels=8, loss_decode=FLAT_LOSSES))


def test_mmseg_tta_and_iou_metric_work_unchanged(person_tree):
    from mmseg.evaluation import IoUMetric
    model = deeplab_r18('pascal_person_part')
    model.eval()
    images, labels = images_and_labels(person_tree)
    with torch.no_grad():
        plain = model.predict(images, samples(labels))
        flipped = samples(labels)
        for s in flipped:
            s.set_metainfo(dict(flip=True, flip_direction='horizontal'))
        flip = model.predict(images.flip(3), flipped)
        raw = model.predict(images.flip(3), samples(labels))  # no flip in the metainfo
    # The flipped pass is unflipped by postprocess_result: its scores are the raw scores
    # of the flipped images flipped back by hand, and its levels are taken from those.
    for f, r in zip(flip, raw):
        torch.testing.assert_close(f.seg_logits.data, r.seg_logits.data.flip(-1))
        assert torch.equal(f.pred_level_seg.data, r.pred_level_seg.data.flip(-1))
        # and not by accident: the unflipped scores are not the raw ones
        assert not torch.allclose(f.seg_logits.data, r.seg_logits.data)
    assert flip[0].pred_level_seg.data.shape == (3, 64, 64)
    tta = MODELS.build(dict(type='SegTTAModel', module=model))
    merged = tta.merge_preds([[plain[i], flip[i]] for i in range(2)])
    assert [m.pred_sem_seg.data.shape for m in merged] == [(1, 64, 64)] * 2
    # mmseg's TTA keeps the last view's levels; ours derives them from the merged scores.
    tta = MODELS.build(dict(type='HierarchicalSegTTAModel', module=model))
    merged = tta.merge_preds([[plain[i], flip[i]] for i in range(2)])
    for i, m in enumerate(merged):
        mean = (plain[i].seg_logits.data + flip[i].seg_logits.data) / 2
        torch.testing.assert_close(m.seg_logits.data, mean)
        assert torch.equal(m.pred_sem_seg.data[0], mean.argmax(0))
    check_levels(merged, person_tree)

    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=person_tree.leaf_names)
    # A perfect prediction gives 100 mIoU: the metric reads leaf ids from pred_sem_seg.
    for s, label in zip(plain, labels):
        s.pred_sem_seg = PixelData(data=torch.where(label == 255, 0, label)[None])
    metric.process([], [s.to_dict() for s in plain])
    assert metric.compute_metrics(metric.results)['mIoU'] == 100.0


def test_a_new_head_as_docs_extending_shows(person_tree):
    """docs/extending.md's example (a SegFormer head made hierarchical by writing its
    `_forward_feature`) runs as written; without `_forward_feature` a head is refused."""
    import os.path as osp
    import re
    from mmseg.models.decode_heads import SegformerHead
    from hseg_mm.models.decode_heads import HierarchicalHeadMixin
    doc = osp.join(osp.dirname(__file__), '..', '..', 'docs', 'extending.md')
    with open(doc) as f:
        code = re.search(r'# my_project/parts\.py\nimport torch\n(.*?)```', f.read(), re.S)[1]
    namespace = {'torch': torch}
    exec(code.replace('@MODELS.register_module()\n', ''), namespace)  # not registered twice
    cfg = dict(in_channels=[8, 8, 8, 16], in_index=[0, 1, 2, 3], channels=16,
               hierarchy=person_tree, loss_decode=HSSN_LOSSES)
    head = namespace['HierarchicalSegformerHead'](**cfg).eval()
    x = feats()
    with torch.no_grad():
        assert head(x).shape == (2, person_tree.num_nodes, 16, 16)
        torch.testing.assert_close(head(x), SegformerHead.forward(head, x), rtol=0, atol=0)

    class HierarchicalSegformerHeadAsIs(HierarchicalHeadMixin, SegformerHead):
        pass

    with pytest.raises(TypeError, match='HierarchicalSegformerHeadAsIs: the head needs '
                                        '`_forward_feature'):
        HierarchicalSegformerHeadAsIs(**cfg)
