"""The machine a figure was measured on, named the same way by every tool."""
import os
import platform
from typing import Optional

import torch

__all__ = ['cpu_name', 'describe_machine']


def cpu_name() -> str:
    """The CPU model (platform.processor() is often empty on Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: Optional[torch.device] = None) -> str:
    """e.g. 'Intel Xeon ... (x86_64), 2 CPUs, torch 2.13.0+cpu, 2 threads, device cpu'."""
    device = torch.device(device or 'cpu')
    text = (f'{cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, '
            f'torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}')
    if device.type == 'cuda':
        text += f' ({torch.cuda.get_device_name(device)})'
    return text
