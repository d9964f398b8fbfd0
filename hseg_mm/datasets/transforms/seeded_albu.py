import random

import numpy as np
from mmseg.datasets.transforms import Albu
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SeededAlbu(Albu):
    """mmseg's `Albu` whose random draws come from numpy's global generator.

    albumentations 2.x keeps its own random state in each `Compose`, which neither
    mmengine's `randomness=dict(seed=...)` and per-worker seeding nor
    `RandomStateHook` reach: a seeded run would not repeat, a resumed run would not
    equal an uninterrupted one, and forked DataLoader workers would all replay the
    sequence of the Compose they copied. So each call first draws one seed from
    `np.random`, where mmseg's own transforms draw, and hands the Compose and all
    its transforms one shared generator pair made from it (albumentations'
    `set_random_seed` would give each transform its own generator on the same
    seed, so their `p` draws would be equal: all applied, or none).

    Args: as `Albu`: `transforms`, a list of albumentations 2.x transform configs
    (2.x names: e.g. `GaussNoise(std_range=...)`, `ImageCompression(quality_range=...)`),
    `keymap`, `update_pad_shape`.
    """

    def transform(self, results: dict) -> dict:
        seed = int(np.random.randint(2**31))
        self.aug.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return super().transform(results)
