"""mmengine's MLflow backend with images as series over training steps, as TensorBoard has them."""
import numpy as np
from mmengine.visualization import MLflowVisBackend
from mmengine.visualization.vis_backend import force_init_env
from mmseg.registry import VISBACKENDS

__all__ = ['MLflowSeriesVisBackend']


@VISBACKENDS.register_module()
class MLflowSeriesVisBackend(MLflowVisBackend):
    """`MLflowVisBackend` whose `add_image` logs a step of an image series.

    mmengine's backend logs an image as one artifact file called `name`: MLflow refuses
    a name without an image extension (hseg-mm's `val_levels_<i>` have none), and each
    validation would overwrite the last. Here `name` is the series key and `step` the
    training iteration (MLflow's `log_image(key=, step=)`, MLflow >= 2.12), so the UI
    shows how the same validation image evolves, as TensorBoard does. Everything else
    (config, scalars, artifacts at the end) is mmengine's.
    """

    @force_init_env
    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs) -> None:
        """Log `image` ((H, W, 3) uint8 RGB) as step `step` of the series `name`."""
        self._mlflow.log_image(image, key=name, step=int(step))
