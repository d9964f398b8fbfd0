"""What turns any mmseg decode head into a hierarchical one.

Mixed in before an mmseg head class (``class HierarchicalFCNHead(HierarchicalHeadMixin,
FCNHead)``), it changes four things:

- the classifier scores every tree node: ``num_classes = hierarchy.num_nodes``, channel
  order ``hierarchy.node_names``;
- the head's forward is split where mmseg's heads split it: ``_forward_feature``
  (the head's last feature: mmseg's own for ASPP, FCN, UPerNet, written in each
  hierarchical head for the others), then ``cls_seg``. ``loss`` runs the feature once
  and hands it to both ``cls_seg`` and, where a loss takes one (the HSSN tree-triplet
  loss), the projection embedding (``embed``); nothing is kept on the module between
  calls;
- ``loss_by_feat`` gives every loss the node logits, the leaf labels and the embedding;
- ``predict_by_feat`` returns LEAF scores (N, L, H, W) by the inference rule, so mmseg's
  whole/slide inference, TTA and IoUMetric work on them unchanged; for a rule applied at
  the original image size (``RULES_AT_ORIGINAL_SIZE``: 'hssn_release', 'hierahyp') it
  returns the node logits (N, V, H, W) and the segmentor applies the rule after its resize.

Optionally (``classifier=dict(type='PoincareClassifier', ...)``) a classifier module scores
the LEAVES from that same feature in place of ``conv_seg``; the head still outputs node
logits (see ``cls_seg``).
"""
import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.losses import accuracy
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from ...utils import config_class
from ..inference import RULES_AT_ORIGINAL_SIZE, check_rule, check_rule_options, leaf_scores
from ..losses.utils import resize_labels
from ..utils import SampledEmbedding, full_statistics_supported

__all__ = ['HierarchicalHeadMixin', 'NO_TREE', 'loss_class']

HierarchyLike = Union[ClassHierarchy, Mapping, str]


def loss_class(cfg: Mapping) -> type:
    """The class of a `loss_decode` entry; KeyError naming an unregistered type."""
    cls = config_class(cfg, MODELS)
    if cls is None:
        raise KeyError(f'loss type {cfg.get("type")!r} is not registered in '
                       'mmseg.registry.MODELS')
    return cls


NO_TREE = (
    'no hierarchy. The config states its tree once, as the top-level `hierarchy`, which '
    'mmseg\'s init_model and MMSegInferencer do not hand to the model: give them a '
    'checkpoint trained by hseg-mm (its weights carry the tree), the config a run dumped '
    'into its work dir (work_dirs/NAME/NAME.py) or hseg_mm.engine.load_config(path, '
    'check_data=False); to train or test, build the runner with RUNNERS.build(cfg), as '
    'tools/train.py does; in your own code call hseg_mm.engine.apply_hierarchy(cfg) '
    'before building the model')


class HierarchicalHeadMixin:
    """Node scores, projection embedding, hierarchical losses and leaf inference.

    Args:
        hierarchy: the class tree (nested mapping, preset name or `ClassHierarchy`);
            a hierarchical segmentor fills in its own when this is left out.
        inference: rule turning node logits into leaf scores at test time, one of
            'tree_min', 'path_sum', 'flat', 'level_argmax', 'hssn_release',
            'hssn_mmseg', 'hierahyp', 'logic' (see `hseg_mm.models.inference`).
        inference_options: the rule's settings (`RULE_OPTIONS`), e.g.
            dict(iterations=2) for 'logic'; None: its defaults.
        embedding_channels: width of the L2-normalised projection embedding
            handed to the losses; built only when a loss in `loss_decode` takes
            an `embedding` argument. None: no embedding (such a loss then fails).
        loss_resolution: 'label' (mmseg's way): the node logits are resized (bilinear)
            to the label size before the losses; 'logits': the labels are resized
            (nearest) to the logits' size instead, so the losses see 1/16 of the pixels
            of a head at 1/4 resolution. Faster, but another objective (a thin part
            keeps fewer label pixels); README "Speed" measures both. A loss with a
            `loss_resolution` attribute other than None is evaluated at its own
            (LogicSeg's rule losses: 'logits', as LogicSeg applies them to its head's
            un-resized logits).
        projection_pixels: 'all': the embedding is every pixel's, batch norm included:
            with a single-process BN in training it is evaluated only at the pixels the loss
            samples, the BN statistics coming from the feature's mean and covariance
            over every pixel (`SampledEmbedding(statistics='all')`, the same values and
            gradients up to floating-point order); with SyncBN or another norm every
            pixel is projected. 'sampled': the BN statistics come from the sampled
            pixels (about 3 x 200 per leaf class and batch) instead, which skips the
            covariance but normalises differently (README "Speed" measures both).
        classifier: None (mmseg's 1x1 `conv_seg` scores every node), or the config
            of a module (e.g. `dict(type='PoincareClassifier', c=1.0)`) built with
            `in_channels=channels, num_classes=hierarchy.num_leaves` that maps the
            head's last feature (N, channels, h, w) to LEAF logits (N, L, h, w),
            channel l = label id l. `conv_seg` then becomes an identity (no unused
            weights) and an inner node's logit is the logsumexp of its leaves'.
            Meant for inference='flat' (or 'level_argmax', 'hierahyp') and leaf
            cross-entropy.
        compile_losses: compile each module of `loss_decode` with torch.compile
            (`nn.Module.compile`, at its first call): True, or torch.compile's keywords
            as a dict, as mmengine's `compile` setting takes them (True: inductor, which
            needs a C++ compiler on a CPU and Triton on CUDA). The values and gradients are
            eager's within float tolerance (tests/models/test_compile.py). Off in the
            shipped recipes: on ResNet-101 at 480x480 it did not shorten the step
            (README "torch.compile"). The first training iteration pays the compilation.
        **kwargs: the mmseg head's own arguments. `num_classes` may be left out
            (it is the number of tree nodes); `loss_decode` must hold losses that
            take `hierarchy=` (the head passes its own tree to those that lack it).

    Shapes: `forward` returns node logits (N, V, h, w); `predict` returns leaf
    scores (N, L, H, W), channel l = label id l.
    """

    def __init__(self, *args: Any, hierarchy: Optional[HierarchyLike] = None,
                 inference: str = 'tree_min', inference_options: Optional[Mapping] = None,
                 embedding_channels: Optional[int] = 256,
                 classifier: Optional[Mapping] = None, loss_resolution: str = 'label',
                 projection_pixels: str = 'all',
                 compile_losses: Union[bool, Mapping] = False,
                 **kwargs: Any) -> None:
        name = type(self).__name__
        if hierarchy is None:
            # a head built on its own; in a segmentor built from a source config the
            # segmentor waits for the tree of its weights instead (PendingHeads)
            raise ValueError(f'{name}: {NO_TREE}')
        tree = build_hierarchy(hierarchy, ignore_index=kwargs.get('ignore_index', 255))
        if loss_resolution not in ('label', 'logits'):
            raise ValueError(f"{name}: loss_resolution must be 'label' or 'logits', "
                             f'got {loss_resolution!r}')
        if projection_pixels not in ('all', 'sampled'):
            raise ValueError(f"{name}: projection_pixels must be 'all' or 'sampled', "
                             f'got {projection_pixels!r}')
        for key in ('num_classes', 'out_channels'):
            if kwargs.get(key) not in (None, tree.num_nodes):
                raise ValueError(
                    f'{name}: {key}={kwargs[key]} but the hierarchy has {tree.num_nodes} nodes '
                    f'({tree.node_names}); leave {key} out, the head sets it from the tree')
        kwargs.pop('out_channels', None)
        kwargs['num_classes'] = tree.num_nodes
        if kwargs.get('sampler') is not None:
            # mmseg's OHEM sampler scores pixels with a softmax over the channels,
            # which is meaningless for independent node scores.
            raise ValueError(f'{name}: pixel samplers are not supported by hierarchical heads')
        if 'loss_decode' not in kwargs:
            raise ValueError(f'{name}: give loss_decode (e.g. FocalTreeMinLoss); mmseg\'s '
                             'default CrossEntropyLoss does not read node scores')
        kwargs['loss_decode'] = self._loss_configs(kwargs['loss_decode'], tree, name)
        super().__init__(*args, **kwargs)
        # the parameter names of the mmseg parent's `loss`, for `loss` to bind its arguments
        self._loss_parameters = tuple(inspect.signature(super().loss).parameters)

        self.hierarchy = tree
        self.inference = check_rule(inference)
        self.inference_options = check_rule_options(inference, inference_options)
        self.loss_resolution = loss_resolution
        self.projection_pixels = projection_pixels
        self.embedding_channels = embedding_channels
        losses = self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) \
            else [self.loss_decode]
        needs = [type(m).__name__ for m in losses
                 if 'embedding' in inspect.signature(m.forward).parameters]
        self.compile_losses = compile_losses
        options = dict(compile_losses) if isinstance(compile_losses, Mapping) else {}
        for m in losses if compile_losses else []:
            m.compile(**options)  # lazy: compiled at the first call; state dict unchanged
        if needs and not embedding_channels:
            raise ValueError(f'{name}: {needs} need the projection embedding; set '
                             'embedding_channels (e.g. 256)')
        # Built only when used, so DDP never sees parameters without gradients.
        self.projection = nn.Sequential(
            ConvModule(self.channels, self.channels, 1, conv_cfg=self.conv_cfg,
                       norm_cfg=self.norm_cfg, act_cfg=self.act_cfg),
            nn.Conv2d(self.channels, embedding_channels, 1)) if needs else None
        if not callable(getattr(self, '_forward_feature', None)):
            raise TypeError(f'{name}: the head needs `_forward_feature(inputs)` (its last '
                            'feature, before cls_seg), as mmseg\'s ASPP, FCN and UPerNet '
                            'heads have; define it in the hierarchical head')
        self.classifier = self._build_classifier(classifier, tree, name)
        if self.classifier is not None:
            # mmseg's `cls_seg` keeps its dropout and calls an identity; its init_cfg
            # override (Normal on conv_seg) finds no weight there and does nothing.
            self.conv_seg = nn.Identity()
        # node v (channel order) -> label ids of the leaves it covers (a leaf: itself)
        self._node_leaves = [
            [tree.node_label_ids[d] for d in [v] + tree.descendants[v]
             if tree.node_label_ids[d] is not None] for v in range(tree.num_nodes)]

    def _build_classifier(self, cfg: Optional[Mapping], tree: ClassHierarchy,
                          name: str) -> Optional[nn.Module]:
        """The leaf classifier from its config, sized to the feature and the leaves."""
        if cfg is None:
            return None
        cfg = dict(cfg)
        for key, value in (('in_channels', self.channels), ('num_classes', tree.num_leaves)):
            if cfg.get(key) not in (None, value):
                raise ValueError(f'{name}: classifier {key}={cfg[key]} but the head gives '
                                 f'{value}; leave {key} out, the head sets it')
            cfg[key] = value
        return MODELS.build(cfg)

    @staticmethod
    def _loss_configs(loss_decode: Union[Mapping, Sequence[Mapping]], tree: ClassHierarchy,
                      name: str) -> List[dict]:
        """Loss configs with the head's tree filled in; a loss without a tree is refused."""
        cfgs = [loss_decode] if isinstance(loss_decode, Mapping) else list(loss_decode)
        out = []
        for cfg in cfgs:
            cls = loss_class(cfg)
            if 'hierarchy' not in inspect.signature(cls.__init__).parameters:
                raise ValueError(
                    f'{name}: loss {cls.__name__} takes no hierarchy, so it cannot read node '
                    'scores (channel order hierarchy.node_names); use FocalTreeMinLoss, '
                    'TreeTripletLoss or HierarchicalCrossEntropyLoss')
            cfg = dict(cfg)
            if cfg.get('hierarchy') is None:
                cfg['hierarchy'] = tree
            elif not build_hierarchy(cfg['hierarchy'], tree.ignore_index).same_tree(tree):
                raise ValueError(f'{name}: loss {cls.__name__} was given another hierarchy '
                                 'than the head; leave its hierarchy out to use the head\'s')
            out.append(cfg)
        return out

    # ---------------------------------------------------------------- forward
    def forward(self, inputs: List[Tensor], *prev_output: Tensor) -> Tensor:
        """Node logits (N, V, h, w); a cascade head (OCR) also takes `prev_output`."""
        return self.cls_seg(self._forward_feature(inputs, *prev_output))

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Node logits (N, V, h, w) from the head's last feature (N, channels, h, w)."""
        if self.classifier is None:
            return super().cls_seg(feat)
        # mmseg's cls_seg with conv_seg an identity: the head's dropout, then the leaves.
        return self._node_logits(self.classifier(super().cls_seg(feat)))

    def embed(self, feat: Tensor) -> Union[Tensor, SampledEmbedding]:
        """The L2-normalised projection embedding (N, E, h, w) of the last feature.

        In training with a single-process BN only the pixels a loss samples are
        projected (`SampledEmbedding`: README "Speed"); otherwise every pixel.
        """
        if self.projection_pixels == 'sampled':
            return SampledEmbedding(feat, self.projection, self.embedding_channels)
        if full_statistics_supported(self.projection):
            # Every pixel's embedding as far as the losses can tell (the batch norm
            # normalised by every pixel, through the feature's moments), but only the
            # sampled pixels projected.
            return SampledEmbedding(feat, self.projection, self.embedding_channels,
                                    statistics='all')
        # SyncBN, other norms, BN on running statistics: project every pixel
        return F.normalize(self.projection(feat), p=2, dim=1)

    def _node_logits(self, leaf_logits: Tensor) -> Tensor:
        """Node logits (N, V, h, w) from leaf logits (N, L, h, w), channel l = label id l.

        A leaf node's channel is its leaf's logit; an inner node's is the logsumexp of
        its leaves' logits, i.e. the log of the parent's summed (unnormalised) leaf
        probability, the flat rule's parent score in the same units. The leaves are
        placed in the node channels, rather than the rule and the losses taught to read
        leaf logits, so that nothing downstream changes: the 'flat' rule and
        `HierarchicalCrossEntropyLoss` read only the leaf-node channels, and whatever
        reads all channels (OCR's object regions, a loss on every node, another rule)
        gets finite values that mean "this parent".
        """
        channels = []
        for leaves in self._node_leaves:
            if len(leaves) == 1:
                channels.append(leaf_logits[:, leaves[0]:leaves[0] + 1])
            else:  # one logsumexp per inner node: no (N, V, L, h, w) intermediate
                index = torch.as_tensor(leaves, device=leaf_logits.device)
                channels.append(torch.logsumexp(leaf_logits.index_select(1, index), dim=1,
                                                keepdim=True))
        return torch.cat(channels, dim=1)

    def loss(self, *args: Any, **kwargs: Any) -> Dict[str, Tensor]:
        """mmseg's `loss`, with its signature: `(inputs, batch_data_samples, train_cfg)`,
        or for a cascade head `(inputs, prev_output, batch_data_samples, train_cfg)`.

        The feature is computed once, for the node logits and the embedding.
        """
        # the parent's parameter names, read in __init__: inspect here would break a
        # torch.compile graph (`callable` is not traceable)
        given = dict(zip(self._loss_parameters, args), **kwargs)
        extra = (given['prev_output'], ) if 'prev_output' in given else ()
        feat = self._forward_feature(given['inputs'], *extra)
        embedding = self.embed(feat) if self.projection is not None else None
        return self.loss_by_feat(self.cls_seg(feat), given['batch_data_samples'], embedding)

    # ------------------------------------------------------------------ loss
    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: SampleList,
                     embedding: Union[None, Tensor, SampledEmbedding] = None
                     ) -> Dict[str, Tensor]:
        """Every loss of `loss_decode` on the node logits, plus leaf accuracy.

        Args:
            seg_logits: node logits (N, V, h, w), resized here to the label size (or
                the labels to (h, w): `loss_resolution`).
            batch_data_samples: carry `gt_sem_seg` (1, H, W) leaf ids.
            embedding: from `embed` (N, E, h, w), for the losses that take one.

        Returns:
            {loss_name: loss} (same names summed, as mmseg does) and 'acc_seg',
            the pixel accuracy of the leaf prediction by the inference rule.
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        # Under --amp the logits and embedding come out of autocast in bfloat16/float16:
        # the losses get float32 and run with autocast off, so every op of every loss
        # (a matmul too) reduces in float32.
        if isinstance(embedding, Tensor):
            embedding = embedding.float()
        with torch.autocast(device_type=seg_logits.device.type, enabled=False):
            inputs = self._loss_inputs(seg_logits.float(), seg_label.squeeze(1))
            losses_decode = self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) \
                else [self.loss_decode]
            loss: Dict[str, Tensor] = dict()
            for loss_decode in losses_decode:
                # a loss may name its own resolution (LogicSeg's rules: the head's logits)
                resolution = getattr(loss_decode, 'loss_resolution', None) or \
                    self.loss_resolution
                value = loss_decode(*inputs(resolution), weight=None,
                                    ignore_index=self.ignore_index, embedding=embedding)
                name = loss_decode.loss_name
                loss[name] = loss[name] + value if name in loss else value
            seg_logits, seg_label = inputs(self.loss_resolution)
            loss['acc_seg'] = self._accuracy(seg_logits.detach(), seg_label)
        return loss

    @torch.compiler.disable
    @torch.no_grad()
    def _accuracy(self, seg_logits: Tensor, seg_label: Tensor) -> Tensor:
        """acc_seg of node logits (N, V, H, W) by the inference rule, (1,). Kept out of
        a torch.compile graph on purpose: traced into the losses' graph, inductor (torch
        2.13) gave every parameter a zero gradient (tests/models/test_compile.py)."""
        leaf = leaf_scores(seg_logits, self.hierarchy, self.inference, self.inference_options)
        return accuracy(leaf, seg_label, ignore_index=self.ignore_index)

    def _loss_inputs(self, seg_logits: Tensor,
                     seg_label: Tensor) -> Callable[[str], Tuple[Tensor, Tensor]]:
        """A function of a resolution ('label' or 'logits') giving (logits, labels) there.

        'label': the node logits (N, V, h, w) resized (bilinear) to the labels (N, H, W);
        'logits': the labels resized (nearest) to (h, w). Each is made once, when first
        asked for.
        """
        made: Dict[str, tuple] = {}

        def at(resolution: str) -> tuple:
            if resolution not in made:
                if resolution == 'label':
                    made[resolution] = (resize(seg_logits, size=seg_label.shape[1:],
                                               mode='bilinear',
                                               align_corners=self.align_corners), seg_label)
                else:
                    made[resolution] = (seg_logits,
                                        resize_labels(seg_label, seg_logits.shape[2:]))
            return made[resolution]
        return at

    # ------------------------------------------------------------- inference
    def predict_by_feat(self, seg_logits: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Leaf scores (N, L, H, W) at the input size from node logits (N, V, h, w);
        for a rule in `RULES_AT_ORIGINAL_SIZE` the node logits (N, V, H, W) resized to
        the input size, which the segmentor resizes to the image before the rule."""
        # float32 scores even when the forward ran under autocast
        node_logits = super().predict_by_feat(seg_logits.float(), batch_img_metas)
        if self.inference in RULES_AT_ORIGINAL_SIZE:
            return node_logits
        return leaf_scores(node_logits, self.hierarchy, self.inference, self.inference_options)

    @property
    def predict_channels(self) -> int:
        """Channels of what `predict` returns: nodes for a rule applied at the original
        image size, else leaves (slide inference allocates them)."""
        if self.inference in RULES_AT_ORIGINAL_SIZE:
            return self.hierarchy.num_nodes
        return self.hierarchy.num_leaves

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, inference={self.inference}, '
                f'nodes={self.hierarchy.node_names}')
