"""Runner checkpoints (message hub with HistoryBuffers) load with torch's weights_only."""
import pickle
from collections import OrderedDict

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner import save_checkpoint


def test_message_hub_round_trip(tmp_path):
    hub = MessageHub.get_instance('compat_round_trip')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 2.5)
    save_checkpoint(dict(message_hub=hub.state_dict()), str(tmp_path / 'ck.pth'))
    loaded = torch.load(tmp_path / 'ck.pth')  # weights_only=True by default (torch>=2.6)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 2.0  # (1.5+2.5)/2


class _Sneaky:
    """Pickles as getattr(OrderedDict, 'fromkeys'): not a HistoryBuffer method."""

    def __reduce__(self):
        return getattr, (OrderedDict, 'fromkeys')


def test_other_getattr_is_refused(tmp_path):
    torch.save({'x': _Sneaky()}, tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer methods'):
        torch.load(tmp_path / 'bad.pth')
