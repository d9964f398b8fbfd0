"""Random states survive a checkpoint round trip (weights-only loading included)."""
import io
import random

import numpy as np
import torch

from hseg_mm.engine.random_state_hook import (_RestoreBeforeNext, get_random_states,
                                              set_random_states)


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_states_round_trip_through_a_weights_only_checkpoint():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    _draws()
    buffer = io.BytesIO()
    torch.save(dict(meta=dict(random_states=[get_random_states()])), buffer)
    expected = _draws()
    _draws()  # move on, as the killed run did
    buffer.seek(0)
    states = torch.load(buffer, weights_only=True)['meta']['random_states'][0]
    set_random_states(states)
    assert _draws() == expected


def test_restore_happens_right_before_the_first_new_batch():
    torch.manual_seed(0)
    saved = get_random_states()
    expected = float(torch.rand(1))  # what the uninterrupted run draws next
    torch.manual_seed(123)  # the resumed process starts elsewhere
    draws = []

    def fetch(index: int) -> int:  # a batch whose augmentation draws a random number
        draws.append(float(torch.rand(1)))
        return index

    wrapped = _RestoreBeforeNext(map(fetch, range(10)), 3, saved)
    assert [next(wrapped) for _ in range(4)] == [0, 1, 2, 3]
    # the 3 replayed batches drew from the resumed process's states; the 4th, the
    # first trained again, from the saved ones, as in the uninterrupted run
    assert draws[3] == expected and expected not in draws[:3]
