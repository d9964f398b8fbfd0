"""Multi-scale testing without a new config: the TTA pipeline's one resize, at several sizes."""
import copy
from typing import List, Sequence

from .hierarchy_config import ConfigError


def _scaled(resize: dict, factor: float) -> dict:
    out = copy.deepcopy(resize)
    if out.get('scale') is not None:
        scale = out['scale']
        scale = (scale, scale) if isinstance(scale, (int, float)) else scale
        out['scale'] = tuple(int(round(s * factor)) for s in scale)
    elif out.get('scale_factor') is not None:
        sf = out['scale_factor']
        out['scale_factor'] = (tuple(s * factor for s in sf) if isinstance(sf, (tuple, list))
                               else sf * factor)
    else:
        raise ConfigError(f'tta_pipeline: {resize} has neither scale nor scale_factor')
    return out


def multi_scale_tta(tta_pipeline: List[dict], factors: Sequence[float]) -> List[dict]:
    """A copy of `tta_pipeline` whose `TestTimeAug` resizes to each of `factors` times
    its one `Resize` (every other choice, e.g. the flips, is kept and combined with each).

    On the PPP CPU recipes (`Resize(scale=(750, 750))`), factors 2/3, 1, 4/3 give long
    sides 500, 750 and 1000. A pipeline that already holds several resizes is refused:
    the factors would multiply a set of sizes the config chose (edit its `img_ratios`).
    """
    if not factors or any(f <= 0 for f in factors):
        raise ConfigError(f'TTA scale factors must be positive, got {list(factors)}')
    pipeline = copy.deepcopy(list(tta_pipeline))
    for step in pipeline:
        if step.get('type') != 'TestTimeAug':
            continue
        for i, group in enumerate(step['transforms']):
            if not group or not all(t.get('type') == 'Resize' for t in group):
                continue
            if len(group) != 1:
                raise ConfigError(
                    f'tta_pipeline already tests at {len(group)} sizes; set them in the '
                    'config (its img_ratios) instead of scaling them again')
            step['transforms'][i] = [_scaled(group[0], f) for f in factors]
            return pipeline
    raise ConfigError('tta_pipeline has no TestTimeAug step with a Resize choice to scale')
