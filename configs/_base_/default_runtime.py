# Runtime shared by every recipe: mmseg's defaults plus TensorBoard.
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# Scalars (losses, lr, per-level mIoU) and images go to TensorBoard as well as to disk:
# `tensorboard --logdir work_dirs/<config>/<timestamp>/vis_data`.
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
# The config's top-level `hierarchy` is the one tree of the run: HierarchicalRunner hands it
# to the model, datasets, metrics and visualizer before building them (none states its
# own). Build the runner with RUNNERS.build(cfg), as the tools do.
runner_type = 'HierarchicalRunner'
# hseg-mm's hooks, registered by HierarchicalRunner beside mmengine's `default_hooks`; a
# dict, so a child config changes one entry, or turns it off with None:
# - hierarchy_check: the built parts hold one tree (checked before the first iteration),
#   every checkpoint carries it, a checkpoint of another tree is refused unless
#   `allow_other_tree = True` (`--allow-other-tree`);
# - random_state: every rank's random states saved in the checkpoints and restored on
#   --resume, so a resumed run ends in the weights of an uninterrupted one;
# - non_finite_guard: stops training at the first non-finite loss term, gradient or
#   weight, naming the iteration and the term, so no NaN model is ever saved
#   (action='skip' skips up to max_skips bad steps in a row first).
hierarchical_hooks = dict(
    hierarchy_check=dict(type='HierarchyCheckHook'),
    random_state=dict(type='RandomStateHook'),
    non_finite_guard=dict(type='NonFiniteGuardHook', action='stop', max_skips=10))
allow_other_tree = False
# Draws the input beside every level's ground truth and prediction.
visualizer = dict(
    type='HierarchicalSegVisualizer', vis_backends=vis_backends, name='visualizer')
# A few validation images, every level side by side, in TensorBoard at each validation.
custom_hooks = [dict(type='HierarchicalVisualizationHook', num_images=4)]
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# Averages the views' leaf scores and derives every level from the average.
tta_model = dict(type='HierarchicalSegTTAModel')
