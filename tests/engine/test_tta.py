"""Multi-scale testing from a config's one-resize TTA pipeline (tools/test.py --tta-scales)."""
import pytest
from mmengine.config import Config

from hseg_mm.engine import ConfigError
from hseg_mm.engine.tta import multi_scale_tta


def test_the_ppp_cpu_recipes_tta_at_three_sizes():
    cfg = Config.fromfile('configs/ppp_cpu/flat_lite2-fpn_ppp-320_cpu.py')
    pipeline = multi_scale_tta(cfg.tta_pipeline, [2 / 3, 1.0, 4 / 3])
    groups = pipeline[1]['transforms']
    # 750 x 2/3 = 500, 750 x 4/3 = 1000; keep_ratio kept, so the long side is that size
    assert [(t['type'], t['scale'], t['keep_ratio']) for t in groups[0]] == [
        ('Resize', (500, 500), True), ('Resize', (750, 750), True),
        ('Resize', (1000, 1000), True)]
    assert groups[1:] == cfg.tta_pipeline[1]['transforms'][1:]  # the flips and the rest
    assert cfg.tta_pipeline[1]['transforms'][0][0]['scale'] == (750, 750)  # not changed


def test_a_scale_factor_resize_is_scaled_too():
    pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=0.5, keep_ratio=True)],
        [dict(type='PackSegInputs')]])]
    out = multi_scale_tta(pipeline, [1.0, 3.0])
    assert [t['scale_factor'] for t in out[1]['transforms'][0]] == [0.5, 1.5]  # 0.5 x 3


def test_an_already_multi_scale_or_resize_free_tta_is_refused():
    demo = Config.fromfile('configs/demo_cpu.py')  # 4 ratios x 2 flips
    with pytest.raises(ConfigError, match='already tests at 4 sizes'):
        multi_scale_tta(demo.tta_pipeline, [1.0, 1.5])
    flips_only = [dict(type='TestTimeAug', transforms=[[dict(type='RandomFlip', prob=1.)]])]
    with pytest.raises(ConfigError, match='no TestTimeAug step with a Resize'):
        multi_scale_tta(flips_only, [1.0])
    with pytest.raises(ConfigError, match='must be positive'):
        multi_scale_tta(demo.tta_pipeline, [0.0])
