# MLflow beside TensorBoard, for any recipe. mmengine refuses a key that two bases both
# define, and every recipe defines `visualizer`, so this file holds a list of its own,
# which a config hands to its visualizer in one line:
#
#     _base_ = ['./hssn_lite2-fpn_ppp-320_cpu.py', '../_base_/mlflow.py']
#     visualizer = dict(vis_backends={{_base_.mlflow_vis_backends}})
#
# Needs `pip install -e .[mlflow]` (mlflow-skinny, the client, with SQLAlchemy and Alembic
# for a SQLite store; `pip install mlflow` adds the UI). Logged: the config (every key a
# parameter, the text as `config.py`), every loss term, the learning rate, the per-level
# metrics of each validation, the validation images as series over the iterations, and the
# run's log and metrics files as artifacts at its end.
mlflow_vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
    dict(
        type='MLflowSeriesVisBackend',  # mmengine's MLflowVisBackend, images by step
        exp_name='hseg_mm',
        # MLflow's own default store, a SQLite file in the directory the tools run from,
        # where a plain `mlflow ui` finds it (artifacts in ./mlruns beside it). Not
        # mmengine's default, a `file://` store: MLflow 3 refuses those. A tracking
        # server instead: tracking_uri='http://host:5000'.
        tracking_uri='sqlite:///mlflow.db'),
]
