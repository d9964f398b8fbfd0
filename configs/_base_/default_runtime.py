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
# own), checks they agree before the first iteration, saves it in every checkpoint and
# refuses a checkpoint of another tree unless `allow_other_tree = True`
# (`--allow-other-tree`). Build the runner with RUNNERS.build(cfg), as the tools do.
runner_type = 'HierarchicalRunner'
allow_other_tree = False
# The runner also stops training at the first non-finite loss term, gradient or weight,
# naming the iteration and the term, so no NaN model is ever saved (action='skip' skips up
# to max_skips bad steps in a row first; None turns the guard off).
non_finite_guard = dict(action='stop', max_skips=10)
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
