"""The original's float32 ``conv1d``, run on one torch thread so its bits do not depend on the machine.

torchaudio's resampler and audioldm_eval's ``TacotronSTFT`` are float32 convolutions whose rounding is part
of the numbers the original reports, so ``resample`` and ``paired_mel`` run that same op. For inputs under
about 20480 samples torch computes it as im2col + a BLAS gemm, and that gemm rounds differently from 8
threads on (up to 2.4e-7 on a resampled clip, 8.4e-5 on a 0.5-s STFT, measured with torch 2.8 and 2.13).
One thread gives one answer in worker processes, with ``--workers 0`` and on any number of cores.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_PINNED = threading.Lock()
"""Held while torch is set to one thread: the setting is process-wide for BLAS, so two Python threads (one per
GPU in ``multidevice``) must not interleave setting and restoring it."""


def conv1d(signal: np.ndarray, kernel: "torch.Tensor", stride: int) -> np.ndarray:
    """``torch.nn.functional.conv1d`` of a 1-D float32 signal (already padded) on one thread.

    Parameters
    ----------
    signal : np.ndarray, shape (n,), float32
    kernel : torch.Tensor, shape (channels, 1, width), float32
    stride : int

    Returns
    -------
    np.ndarray, shape (channels, 1 + (n - width) // stride), float32
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))[None, None]
    with _PINNED:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                out = torch.nn.functional.conv1d(x, kernel, stride=stride)
        finally:
            torch.set_num_threads(threads)
    return out[0].numpy()
