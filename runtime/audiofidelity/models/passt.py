"""PaSST (Koutini et al. 2022), hear21passt's ``passt_s_swa_p16_128_ap476``: the AudioSet classifier that
audioldm_eval's ``passt_replace_panns`` branch, stable-audio-metrics, audiocraft and av-benchmark read (issue #31).

Frontend ``passt_mel``: hear21passt's ``AugmentMelSTFT`` in eval mode (no augmentation), in NumPy with no torchaudio:
pre-emphasis, a centred 1024-point STFT of a symmetric 800-sample Hann window every 320 samples, power, 128
Kaldi-style mel banks (``kaldi_mel_banks``, torchaudio's ``get_mel_banks`` rewritten) over 0-15000 Hz,
``log(x + 1e-5)``, ``(x + 4.5) / 5``. Export: ``export_scripts/passt.py`` (the ViT from the mel on, patchout off);
stand-in: ``tests/fixtures/passt.py``; parity against hear21passt: ``tests/test_passt.py``.

Fed by default as audioldm_eval's ``passt_replace_panns`` branch feeds it: 32 kHz, cut or zero-padded to one 10-s
window (the exported manifest's ``samples``). ``--passt-feeding`` chooses another toolkit's reading of a file, its
windows and its KL (``FEEDINGS``); the report records the choice.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import InvalidAudioError
from ..float32_conv import conv1d
from ..validation import check_number
from .family import Adjustment, ArtifactEntry, FadModel, Frontend, KLDefinition, ModelFamily, ModelOption

RELEASE = "https://github.com/kkoutini/PaSST/releases/download/"
SOURCE_FILE = "passt-s-f128-p16-s10-ap.476-swa.pt"
SOURCE_URL = RELEASE + "v0.0.1-audioset/" + SOURCE_FILE
"""hear21passt 0.0.26's ``default_cfgs["passt_s_swa_p16_128_ap476"]["url"]`` (``models/passt.py``)."""
VARIANTS = (("passt-s-20s", "passt-20s", 20, "passt-s-f128-20sec-p16-s10-ap.474-swa.pt"),
            ("passt-s-30s", "passt-30s", 30, "passt-s-f128-30sec-p16-s10-ap.473-swa.pt"))
"""(artifact, backbone, window seconds, release file) of hear21passt's ``passt_20sec`` and ``passt_30sec``
(``base20sec``, ``base30sec``; release v0.0.5): the same network with a longer time embedding."""
SOURCE_SHA256 = "302903fa8c4aee817b11dc982da0b29aaf8d11a3e722420476d0a12c9db70c2c"
"""The release file's sha256 (344,665,734 bytes), as three independent public projects pin it against their own
downloads of ``SOURCE_URL`` (not measured here: no network); ``export.py --download`` refuses other bytes."""

FRONTEND = dict(kind="passt_mel", sample_rate=32000, n_fft=1024, hop_length=320, win_length=800, n_mels=128,
                fmin=0.0, fmax=15000.0, preemphasis=0.97, log_offset=1e-5, shift=4.5, scale=5.0)
"""``get_basic_model``'s ``AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, fmin=0.0,
fmax=None, fmax_aug_range=2000)``: ``fmax`` None becomes ``sr // 2 - fmax_aug_range // 2`` = 15000 Hz, the band eval
mode uses (training draws fmin in [0, 10) and fmax in (14000, 16000])."""


@lru_cache(maxsize=8)
def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's triangular mel filters as ``torchaudio.compliance.kaldi.get_mel_banks`` computes them (no VTLN warp),
    with the zero column for the Nyquist bin that ``AugmentMelSTFT`` appends.

    Triangles equally spaced on Kaldi's mel scale ``1127 ln(1 + f / 700)`` between ``fmin`` and ``fmax`` (``fmax``
    <= 0 counts down from Nyquist, as Kaldi's ``high_freq``), evaluated at the FFT bins ``k * sample_rate / n_fft``,
    ``k < n_fft / 2``, unnormalised (peak 1). torchaudio's float32 arithmetic step by step (its band edges in float64,
    then float32 tensors; the logarithm correctly rounded to float32): bit-identical to torchaudio 2.11 for
    ``FRONTEND`` (float64 throughout differs by up to 1.3e-5, which moves the mel by up to 1.3e-5).

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float32, read-only

    Raises
    ------
    ValueError
        ``n_mels`` <= 3, an odd ``n_fft``, or a band outside [0, Nyquist].

    References: Povey et al., Kaldi ``mel-computations.cc``; torchaudio ``compliance/kaldi.py``.
    """
    nyquist = 0.5 * sample_rate
    high = fmax + nyquist if fmax <= 0.0 else fmax
    if n_mels <= 3 or n_fft % 2 or not (0.0 <= fmin < nyquist and 0.0 < high <= nyquist and fmin < high):
        raise ValueError(f"Kaldi mel banks need n_mels > 3, an even n_fft and 0 <= fmin < fmax <= Nyquist "
                         f"({nyquist:g} Hz); got n_mels={n_mels}, n_fft={n_fft}, fmin={fmin:g}, fmax={high:g}")
    f32 = np.float32
    low_mel, high_mel = 1127.0 * math.log(1.0 + fmin / 700.0), 1127.0 * math.log(1.0 + high / 700.0)
    delta, low = f32((high_mel - low_mel) / (n_mels + 1)), f32(low_mel)
    index = np.arange(n_mels, dtype=np.float32)[:, None]
    left, centre, right = (low + (index + f32(k)) * delta for k in (0, 1, 2))
    freq = f32(sample_rate / n_fft) * np.arange(n_fft // 2, dtype=np.float32)
    mel = (f32(1127.0) * np.log((f32(1.0) + freq / f32(700.0)).astype(np.float64)).astype(np.float32))[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = np.pad(np.maximum(f32(0.0), np.minimum(up, down)), ((0, 0), (0, 1)))
    banks.setflags(write=False)
    return banks


def _power_spectrogram(wave: np.ndarray, *, n_fft: int, hop_length: int, win_length: int,
                       preemphasis: float) -> np.ndarray:
    """The original's own float32 ops up to the power spectrum, on one torch thread: the pre-emphasis ``conv1d``,
    ``torch.stft`` (reflect-padded, centred, symmetric Hann window), ``|X|**2``. (A float64 FFT differs from this
    float32 one by up to 3.7e-4 after the log, in low-power bins of loud frames: the original's rounding.)"""
    import torch

    kernel = torch.tensor([[[-preemphasis, 1.0]]], dtype=torch.float32)
    x = torch.from_numpy(conv1d(np.asarray(wave, dtype=np.float32), kernel, stride=1))
    with torch.inference_mode():
        spectrum = torch.stft(x, n_fft, hop_length=hop_length, win_length=win_length, center=True,
                              normalized=False, window=torch.hann_window(win_length, periodic=False),
                              return_complex=True)
        power = torch.view_as_real(spectrum).pow(2).sum(-1)
    return power[0].numpy()


def sam_window_starts(n: int, hop: int) -> range:
    """Where stable-audio-metrics' windows of a clip of ``n`` samples start: ``0, hop, ...`` below
    ``max(hop, n - hop)`` (its loop's ``range``)."""
    return range(0, max(hop, n - hop), hop)


def sam_windows(wave: np.ndarray, length: int, hop: int, pad_above: int) -> list[np.ndarray]:
    """stable-audio-metrics' windows of a clip: starts ``0, hop, 2 hop, ...`` below ``max(hop, n - hop)``, each
    ``wave[start:start + length]``; one shorter than ``length`` is zero-padded to it if it has more than
    ``pad_above`` samples, and otherwise fed as it is (its comment says "discard", its code keeps it: only a whole
    clip of at most ``pad_above`` samples is that short).

    See Also: stable-audio-metrics ``src/passt_kld.py`` ``return_probabilities`` (10-s windows every 5 s,
    ``pad_above`` 15 % of a window)."""
    out = []
    for start in sam_window_starts(len(wave), hop):
        window = wave[start:start + length]
        if pad_above < len(window) < length:
            window = np.pad(window, (0, length - len(window)))
        out.append(window)
    return out


def audiocraft_segments(wave: np.ndarray, length: int, minimum: int) -> list[np.ndarray]:
    """audiocraft's segments of a clip: ``torch.split`` into consecutive ``length``-sample pieces (no overlap), each
    kept as it is, unpadded, if it has more than ``minimum`` samples (a shorter last piece is dropped).

    See Also: audiocraft ``metrics/kld.py`` ``PasstKLDivergenceMetric._process_audio`` (10 s, ``minimum`` 0.15 s)."""
    return [piece for piece in (wave[start:start + length] for start in range(0, len(wave), length))
            if len(piece) > minimum]


def passt_mel(wave: np.ndarray, *, samples: int | None = None, windows: list[int] | None = None,
              segments: int | None = None, truncate: int | None = None,
              **spectral: Any) -> np.ndarray | list[np.ndarray]:
    """hear21passt's ``AugmentMelSTFT.forward`` in eval mode on a clip, fed as a toolkit feeds it: one mel
    (``mel_of_window``) of the clip, of its cut or padded window, or of each of its windows or segments.

    Parameters
    ----------
    wave : np.ndarray, shape (n,), float, at the frontend's ``sample_rate``
    samples : int, optional
        The model's window: cut or zero-pad the clip to exactly this many samples (audioldm_eval, av-benchmark), or
        with ``segments`` the length of each segment.
    windows : [length, hop, pad_above], optional
        stable-audio-metrics' windows (``sam_windows``), one mel each.
    segments : int, optional
        audiocraft's segments of ``samples`` (``audiocraft_segments``), those of more than ``segments`` samples kept,
        one mel each, of its own length.
    truncate : int, optional
        Only the clip's first ``truncate`` samples are read (av-benchmark's ``--audio_length``).
    **spectral
        ``mel_of_window``'s parameters, as ``FRONTEND`` names them.

    Returns
    -------
    np.ndarray, shape (windows, 1, n_mels, frames), float32, or with ``segments`` a list of (1, n_mels, frames)
    arrays, one per segment (the last may be shorter)

    Raises
    ------
    InvalidAudioError
        ``segments``: no segment is longer than ``minimum`` (audiocraft leaves such a clip out).
    """
    if truncate is not None:
        wave = wave[:truncate]
    if segments is not None:
        if samples is None:
            raise ValueError("segments needs samples, the segments' length (the model's window)")
        kept = audiocraft_segments(wave, samples, segments)
        if not kept:
            raise InvalidAudioError(f"too short for audiocraft's PaSST feeding: {len(wave)} samples at "
                                    f"{spectral['sample_rate']} Hz, and it keeps only segments of more than "
                                    f"{segments} samples")
        return [mel_of_window(piece, **spectral)[0] for piece in kept]
    if windows is not None:
        return np.concatenate([mel_of_window(w, **spectral) for w in sam_windows(wave, *windows)])
    if samples is not None:  # audioldm_eval's PaSST feeding: one window of exactly ``samples`` (10 s)
        wave = np.pad(np.asarray(wave, dtype=np.float32)[:samples], (0, max(samples - len(wave), 0)))
    return mel_of_window(wave, **spectral)


def mel_of_window(wave: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
                  fmin: float, fmax: float, preemphasis: float, log_offset: float, shift: float,
                  scale: float) -> np.ndarray:
    """hear21passt's ``AugmentMelSTFT.forward`` in eval mode, on one window as it is.

    The waveform as float32 (the original's tensor); pre-emphasis ``y[i] = x[i + 1] - preemphasis * x[i]`` (its
    ``conv1d`` with ``[-0.97, 1]``: one sample shorter); ``torch.stft(center=True)``: reflect padding of
    ``n_fft // 2``, frames every ``hop_length``, the symmetric Hann window of ``win_length`` centred in ``n_fft``;
    power (these in torch's float32 ops, as the original: ``_power_spectrogram``); ``kaldi_mel_banks``;
    ``log(mel + log_offset)``; ``(x + shift) / scale``; the mel product and logarithm in float64, rounded to
    float32 where the original rounds.

    Parameters
    ----------
    wave : np.ndarray, shape (n,), float, at ``sample_rate``; n > ``n_fft // 2 + 1`` (the reflect padding)
    Others as ``FRONTEND`` names them.

    Returns
    -------
    np.ndarray, shape (1, 1, n_mels, frames), float32; ``frames = 1 + (n - 1) // hop_length`` (1000 for 10 s)

    Raises
    ------
    ValueError
        A clip too short for the reflect padding (torch.stft refuses it too).

    References: Koutini et al., "Efficient Training of Audio Transformers with Patchout", Interspeech 2022;
    hear21passt ``models/preprocess.py``.
    """
    if len(wave) <= n_fft // 2 + 1:
        raise ValueError(f"PaSST's mel needs more than {n_fft // 2 + 1} samples (its STFT reflects {n_fft // 2} "
                         f"samples at each end); got {len(wave)}: pad the clip first")
    power = _power_spectrogram(wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                               preemphasis=preemphasis)
    banks = kaldi_mel_banks(n_mels, n_fft, sample_rate, fmin, fmax)
    mel = (banks.astype(np.float64) @ power.astype(np.float64)).astype(np.float32) + np.float32(log_offset)
    logged = np.log(mel.astype(np.float64)).astype(np.float32)
    return ((logged + np.float32(shift)) / np.float32(scale))[None, None]


def passt_mel_bytes(n: int, *, n_fft: int, hop_length: int, n_mels: int, samples: int | None = None,
                    windows: list[int] | None = None, segments: int | None = None,
                    truncate: int | None = None, **_: Any) -> float:
    """``passt_mel``'s peak bytes for ``n`` samples: the float32 wave, its pre-emphasis and torch's reflect-padded
    copy; the complex64 spectrum while its power (float32) is formed; the power and the banks in float64 and their
    float64 product while the float32 mel is formed. With ``windows`` or ``segments``: every window's mel kept
    (twice, while they are joined) and one window's work at a time."""
    if truncate is not None:
        n = min(n, truncate)
    if segments is not None and samples is not None:
        windows = [samples, samples, 0]
    if windows is not None:
        length, hop = windows[0], windows[1]
        count = len(sam_window_starts(n, hop))
        one = passt_mel_bytes(min(n, length), n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, samples=length)
        return count * (4.0 * length + 2 * 4.0 * n_mels * (1 + length // hop_length)) + one
    if samples is not None:  # the cut or padded copy, then the mel of ``samples``
        return 4.0 * n + passt_mel_bytes(samples, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    frames = 1 + n // hop_length
    bins = n_fft // 2 + 1
    return 4.0 * 3 * (n + n_fft) + frames * (8.0 * bins + 4.0 * bins + 8.0 * bins + 8.0 * n_mels + 4.0 * n_mels * 2) \
        + 8.0 * n_mels * bins


def passt_fitting(n: int, *, samples: int | None = None, windows: list[int] | None = None,
                  segments: int | None = None, truncate: int | None = None, **_: Any) -> str | None:
    """What ``passt_mel`` does to a clip of ``n`` samples: ``"cut"`` when samples are left out (past ``truncate``,
    past the one window, a last segment audiocraft drops), ``"padded"`` when zeros are added (the one window, a
    stable-audio-metrics window), None when every window is fed as it is."""
    if truncate is not None and n > truncate:
        return "cut"
    if segments is not None and samples is not None:
        return "cut" if 0 < n % samples <= segments else None
    if windows is not None:
        length, hop, pad_above = windows
        return "padded" if any(pad_above < min(length, n - start) < length for start in sam_window_starts(n, hop)) \
            else None
    if samples is not None and n != samples:
        return "padded" if n < samples else "cut"
    return None


def passt_window(*, samples: int | None = None, windows: list[int] | None = None, **_: Any) -> int | None:
    """The window every feeding's items usually have (``Frontend.nominal_samples``): the cut or padded window, a
    stable-audio-metrics window or an audiocraft segment; None for the whole clip (its length is its own)."""
    return samples if samples is not None else windows[0] if windows is not None else None


WINDOW, HOP = 320000, 160000
"""PaSST-S's 10 s at 32 kHz, and stable-audio-metrics' 5-s hop between its windows."""
AUDIOCRAFT_MINIMUM = 4800
"""audiocraft's ``min_input_frames``: 0.15 s at 32 kHz; a segment must be longer."""

_SAM = Adjustment(frontend={"windows": [WINDOW, HOP, int(WINDOW * 0.15)]}, collect="mean",
                  conditioning={"channel": "mean", "remove_dc": False, "resampler": "soxr_hq", "min_samples": 0,
                                "peak_dbfs": -1.0},
                  kl=KLDefinition("stable-audio-metrics", reverse=True))
FEEDINGS: dict[str, Adjustment] = {
    "audioldm_eval": Adjustment(),
    "stable-audio-metrics": _SAM,
    "stable-audio-metrics-max": replace(_SAM, collect="max"),
    "audiocraft": Adjustment(
        frontend={"segments": AUDIOCRAFT_MINIMUM},
        conditioning={"channel": "mean", "remove_dc": False, "resampler": "julius", "min_samples": 0},
        collect="each", kl=KLDefinition("audiocraft", per_segment=True, both_directions=True)),
    "av-benchmark": Adjustment(conditioning={"channel": "mean", "remove_dc": True, "resampler": "torchaudio",
                                             "min_samples": 0},
                               kl=KLDefinition("av-benchmark", epsilon=0.0)),
}
"""How each toolkit feeds PaSST-S and which KL it reports (``--passt-feeding``). The other toolkits' feedings set
every ``Conditioning`` field their reading of a file depends on, over the run's (the report records the stage's):

- ``audioldm_eval`` (its ``passt_replace_panns`` branch): the run's conditioning (audioldm_eval's unless
  ``--channel``/``--resampler``... change it: the first channel, the mean removed, torchaudio's resampler, at least
  1 s), then cut or zero-padded to one 10-s window; KL(reference || generated), 1e-6 on the generated side (the
  manifest's feeding).
- ``stable-audio-metrics`` (``passt_kld.py``): ``librosa.load(sr=32000, mono=True)`` (channel mean, soxr_hq), peak
  to -1 dBFS (pyloudnorm), 10-s windows every 5 s (``sam_windows``), their logits averaged ("collect mean") before
  the softmax; KL(generated || reference), 1e-6 on the reference side. ``stable-audio-metrics-max``: the same with
  the windows' largest logit per class (its ``collect="max"``).
- ``audiocraft`` (``metrics/kld.py``): julius's resampler, then the channel mean (here the mean comes first: the two
  orders differ by float32 rounding), consecutive segments of the model's window (10 s, AudioGen's; 20 s with
  ``--backbone passt-20s``, MusicGen's ``pretrained_length: 20``) fed unpadded, those of at most 0.15 s dropped
  (``audiocraft_segments``); each segment one row, paired segment by segment; KL(reference || generated), 1e-6 on
  the generated side, averaged over segments, its reverse and their sum in the details.
- ``av-benchmark`` (MMAudio's evaluation): the channel mean, the mean removed, torchaudio's resampler, one 10-s window
  cut or zero-padded (``--passt-audio-length`` first cuts to its ``--audio_length``); FD on the 768-d embedding,
  IS as audioldm_eval's, KL(reference || generated) from ``log_softmax`` with no epsilon.
"""


def feeding(name: str) -> str:
    """``--passt-feeding``'s check: one of ``FEEDINGS``."""
    if name not in FEEDINGS:
        raise ValueError(f"passt_feeding must be one of {', '.join(FEEDINGS)}, got {name!r}")
    return name


MAX_AUDIO_LENGTH = 86400.0
"""``--passt-audio-length``'s largest value, a day: longer only keeps the whole clip (and ``1e308`` seconds would not
be a number of samples)."""


def audio_length(seconds: float) -> float:
    """``--passt-audio-length``'s check: a positive number of seconds, at most ``MAX_AUDIO_LENGTH``."""
    return check_number(seconds, "passt_audio_length", minimum=0.0, inclusive=False, maximum=MAX_AUDIO_LENGTH)


FAMILY = ModelFamily(
    "passt",
    artifacts=(
        ArtifactEntry("passt-s", "classifier", "passt", (32000,), "passt", SOURCE_FILE, SOURCE_URL, "Apache-2.0",
                      source_sha256=SOURCE_SHA256, origin="PaSST, GitHub release kkoutini/PaSST v0.0.1-audioset",
                      model_rate=32000, dimension=768, frames="1 per 10-s window",
                      description="PaSST-S (AudioSet tagging, hear21passt), 768-d embedding + 527 logits",
                      provides=("embedding", "logits")),
        *(ArtifactEntry(name, "classifier", backbone, (32000,), "passt", file, RELEASE + "v0.0.5/" + file,
                        "Apache-2.0", origin="PaSST, GitHub release kkoutini/PaSST v0.0.5", model_rate=32000,
                        dimension=768, frames=f"1 per {seconds}-s window",
                        description=f"PaSST-S trained on {seconds}-s AudioSet windows (hear21passt "
                                    f"passt_{seconds}sec), 768-d embedding + 527 logits",
                        provides=("embedding", "logits"))
          for name, backbone, seconds, file in VARIANTS),
    ),
    fad_models=(FadModel("passt-s", "passt-s", "embedding", "audioldm_eval", conditioning=()),),
    frontends=(Frontend("passt_mel", passt_mel, passt_mel_bytes, passt_fitting, nominal_samples=passt_window),),
    options=(ModelOption("passt_feeding", "backbone", "passt: feed PaSST and compute KL as this toolkit does: "
                         + ", ".join(FEEDINGS) + " (default audioldm_eval)", adjust=lambda name, rate: FEEDINGS[name],
                         parse=str, check=feeding, metavar="TOOLKIT", provenance="passt_feeding"),
             ModelOption("passt_audio_length", "backbone", "passt: read only each clip's first SECONDS before it is "
                         "windowed (av-benchmark's --audio_length)",
                         adjust=lambda seconds, rate: Adjustment(frontend={"truncate": int(rate * seconds)}),
                         parse=float, check=audio_length, metavar="SECONDS")),
)
