# The HSSN release's objective (qhanghu/HSSN_pytorch, RMIHieraTripletLoss), which the paper
# does not describe: 0.5 * rmi + 0.5 * tree-min + ce(every level) + triplet. For any tree:
# a recipe takes it with `decode_head=dict(loss_decode={{_base_.hssn_release_loss}})`.
hssn_release_loss = [
    # Its RMI module returns 0.5 (lambda) x the RMI bound, scaled by 0.5 once more: 0.25 on
    # the sigmoid of every node, radius 3, 3x3/3 max-pooling, jitter 1e-3.
    dict(type='RMILoss', nodes='all', radius=3, pool='max', pool_size=3, jitter=1e-3,
         loss_weight=0.25),
    # Its tree-min loss is the mean over the nodes of each level, summed over the levels,
    # weighted 0.5. Ours sums over nodes, so 'level_mean' gives each node 1 / (classes of
    # its level), per level it stands at (person tree: background 1/2 + 1/3 + 1/7 = 41/42,
    # as the release's one background channel per level).
    dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=0.5, class_weight='level_mean'),
    # Cross-entropy at every level, weight 1 each, each level a softmax over its own node
    # logits (the release's ce_loss, ce_loss2, ce_loss3 on its channel groups).
    dict(type='HierarchicalCrossEntropyLoss', levels=None, softmax='level_nodes',
         loss_weight=1.0),
    # Tree-triplet: margin 0.6, <= 200 samples per class, weight 0 -> 0.5 by a cosine over
    # the whole run.
    dict(type='TreeTripletLoss', margin=0.6, max_samples_per_class=200,
         weight_schedule=dict(type='cosine', start=0.0, end=0.5), loss_weight=1.0),
]
