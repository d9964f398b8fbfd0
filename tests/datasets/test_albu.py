"""albumentations through mmseg's Albu: configs/_base_/datasets/albu_photometric.py and
configs/demo_cpu_albu.py. The corruptions change the image and never the label map,
ignore pixels (255) included; their randomness follows numpy's seed."""
import copy
import os.path as osp
import warnings

import albumentations as A
import numpy as np
import pytest
from dataset_helpers import tiny_label
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.datasets.transforms import Albu
from mmseg.registry import DATASETS, TRANSFORMS

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine import apply_hierarchy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FRAGMENT = Config.fromfile(
    osp.join(ROOT, 'configs', '_base_', 'datasets', 'albu_photometric.py')).albu_photometric
CORRUPTIONS = ['GaussianBlur', 'MotionBlur', 'GaussNoise', 'RGBShift', 'ImageCompression']

init_default_scope('mmseg')


def leaves(cfgs: list) -> list:
    """The transform configs of the fragment, OneOf's members in its place."""
    out = []
    for cfg in cfgs:
        out += leaves(cfg['transforms']) if cfg['type'] == 'OneOf' else [cfg]
    return out


def build(fragment: dict):
    # albumentations 2.x only warns about (and ignores) 1.x argument names such as
    # GaussNoise(var_limit=...): a warning here is a setting silently lost
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*not valid for transform')
        return TRANSFORMS.build(copy.deepcopy(fragment))


def sample(seed: int = 0) -> dict:
    """A 16x24 image (smooth ramp plus texture, so blur and JPEG both change it) and
    its label, ids 0..6 with an ignored band of 255 in the last 4 columns."""
    label = tiny_label(seed)
    label[:, -4:] = 255
    rng = np.random.default_rng(seed)
    ramp = np.linspace(30, 220, label.shape[1])[None, :, None]
    img = np.clip(ramp + rng.normal(0, 20, label.shape + (3,)), 0, 255).astype(np.uint8)
    return dict(img=img, gt_seg_map=label, seg_fields=['gt_seg_map'], img_shape=label.shape,
                ori_shape=label.shape, img_path='x.jpg', seg_map_path='x.png',
                layout_to_tree=list(range(7)), ignore_index=255)


def test_fragment_is_pixel_level_only():
    transform = build(FRAGMENT)
    assert isinstance(transform, Albu)  # mmseg's, reseeded (hseg_mm SeededAlbu)
    assert [c['type'] for c in leaves(FRAGMENT.transforms)] == CORRUPTIONS

    def built(ts):
        for t in ts:
            yield from built(t.transforms) if isinstance(t, A.OneOf) else [t]
    # ImageOnlyTransform: albumentations applies it to `image` only, never to `mask`
    assert all(isinstance(t, A.ImageOnlyTransform) for t in built(transform.aug.transforms))


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_each_corruption_changes_the_image_not_the_label(name):
    cfg = next(c for c in leaves(FRAGMENT.transforms) if c['type'] == name)
    transform = build(dict(FRAGMENT, transforms=[dict(cfg, p=1.0)]))  # always applied
    np.random.seed(0)
    for seed in range(3):
        data = sample(seed)
        img, label = data['img'].copy(), data['gt_seg_map'].copy()
        out = transform(data)
        assert out['gt_seg_map'].dtype == label.dtype
        assert np.array_equal(out['gt_seg_map'], label)  # bit for bit, the 255 band too
        assert (out['gt_seg_map'] == 255).sum() == 16 * 4
        assert out['img'].shape == img.shape and out['img'].dtype == np.uint8
        assert not np.array_equal(out['img'], img), name


def test_shipped_fragment_keeps_labels_and_changes_some_images():
    transform = build(FRAGMENT)
    np.random.seed(0)
    changed = 0
    for seed in range(20):
        data = sample(seed)
        img, label = data['img'].copy(), data['gt_seg_map'].copy()
        out = transform(data)
        assert np.array_equal(out['gt_seg_map'], label)
        changed += not np.array_equal(out['img'], img)
    # 4 independent groups at p=0.2: an image stays as it is with 0.8^4 = 0.41, so
    # about 12 of 20 change; none or all 20 would mean p is not applied
    assert 0 < changed < 20, changed


def test_randomness_follows_numpy_seed():
    cfg = dict(FRAGMENT, transforms=[dict(type='GaussNoise', std_range=(0.05, 0.05), p=1.0)])

    def noisy(transform, seed):
        np.random.seed(seed)
        return transform(sample(0))['img']
    one, two = build(cfg), build(cfg)
    # two instances (two DataLoader workers, a resumed run) agree under one seed
    assert np.array_equal(noisy(one, 3), noisy(two, 3))
    assert not np.array_equal(noisy(one, 3), noisy(one, 4))
    # why SeededAlbu: mmseg's Albu keeps albumentations' own random state, out of
    # reach of numpy's seed, so two instances differ under one seed
    plain = [TRANSFORMS.build(dict(cfg, type='Albu')) for _ in range(2)]
    assert not np.array_equal(noisy(plain[0], 3), noisy(plain[1], 3))


def test_transforms_are_applied_independently():
    # two colour casts told apart by channel: red +20 and blue +20, each at p=0.5
    transform = build(dict(FRAGMENT, transforms=[
        dict(type='RGBShift', r_shift_limit=(20, 20), g_shift_limit=0, b_shift_limit=0,
             p=0.5),
        dict(type='RGBShift', r_shift_limit=0, g_shift_limit=0, b_shift_limit=(20, 20),
             p=0.5)]))
    np.random.seed(0)
    seen = set()
    for _ in range(40):
        data = dict(img=np.full((4, 4, 3), 100, np.uint8),
                    gt_seg_map=np.zeros((4, 4), np.uint8))
        shift = transform(data)['img'].astype(int) - 100  # BGR: blue is 0, red is 2
        seen.add((int(shift[..., 0].max()), int(shift[..., 2].max())))
    # drawn independently, all four cases occur (each is missed in 40 calls with
    # 0.75^40 = 1e-5); one shared seed per transform would give only both or neither
    assert seen == {(0, 0), (0, 20), (20, 0), (20, 20)}


@pytest.fixture(scope='module')
def people(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=4, num_val=1, size=(128, 128), seed=1)
    return root


def train_dataset(config: str, data_root: str):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    apply_hierarchy(cfg, check_paths=False)
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=data_root, generate=None)
    return DATASETS.build(dataset)


def test_albu_config_builds_its_train_pipeline(people):
    demo = train_dataset('demo_cpu.py', people)
    albu = train_dataset('demo_cpu_albu.py', people)
    assert [type(t).__name__ for t in albu.pipeline.transforms] == \
        [type(t).__name__ for t in demo.pipeline.transforms][:-1] + \
        ['SeededAlbu', 'PackSegInputs']
    changed = 0
    for draw in range(8):
        # the same numpy seed gives both the same resize, crop, flip and colour draws
        # (SeededAlbu draws its seed after them): labels must agree bit for bit
        np.random.seed(draw)
        a = demo[draw % 4]
        np.random.seed(draw)
        b = albu[draw % 4]
        assert b['data_samples'].gt_sem_seg.data.equal(a['data_samples'].gt_sem_seg.data)
        assert b['inputs'].shape == a['inputs'].shape
        changed += not b['inputs'].equal(a['inputs'])
    # each image is left as it is with 0.8^4 = 0.41, so about 5 of 8 change
    assert 0 < changed < 8, changed
