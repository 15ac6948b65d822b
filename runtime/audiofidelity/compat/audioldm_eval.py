"""``from audiofidelity.compat.audioldm_eval import EvaluationHelper`` in place of audioldm_eval's.

Same constructor, same ``main(generate_files_path, groundtruth_path, limit_num=None)``, same result dict:
the original's eleven keys in its order, ``-1`` for KL (and PSNR/SSIM/LSD when asked for) in unpaired
mode, NaN for what the original's ``main`` leaves NaN (KID, whose call is commented out, and PSNR/SSIM/LSD,
which ``main`` never computes; ``calculate_metrics(..., calculate_psnr_ssim=True, calculate_lsd=True)``
computes them, as in the original), and the timestamped JSON written beside the generated folder.
What differs, on purpose: bad files are skipped and reported instead of crashing or being silently
replaced, no feature pickles are written into the user's folders (the feature cache is used instead),
and the full report of the last run is kept in ``last_report``.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
from pathlib import Path

from ..evaluate import METRICS, Evaluator, EvaluationResult
from ..models import DEFAULTS
from ..outputs import write_text

log = logging.getLogger(__name__)

RESULT_KEYS = ("frechet_distance", "frechet_audio_distance", "kullback_leibler_divergence_sigmoid",
               "kullback_leibler_divergence_softmax", "lsd", "psnr", "ssim", "inception_score_mean",
               "inception_score_std", "kernel_inception_distance_mean", "kernel_inception_distance_std")
"""The original's result dict, in its order."""
MAIN_METRICS = ("fad", "kl", "kl_sigmoid", "isc", "fd")
"""What the original's ``main`` computes."""
UNPAIRED_SENTINEL = -1.0


def result_dict(report: dict, computed: tuple[str, ...]) -> dict[str, float]:
    """The original's result dict from an audiofidelity report: -1 for paired-only keys in unpaired mode,
    NaN for keys it does not compute or that could not be computed."""
    computed_keys = {key for m in computed for key in METRICS[m].keys}
    paired_only = {key for m in computed if METRICS[m].paired_only for key in METRICS[m].keys}
    out = {}
    for key in RESULT_KEYS:
        value = report["metrics"].get(key) if key in computed_keys else None
        if key in paired_only and report["mode"] == "unpaired":
            value = UNPAIRED_SENTINEL
        out[key] = float(value) if value is not None else math.nan
    return out


class EvaluationHelper:
    """audioldm_eval's ``EvaluationHelper`` on exported models.

    Parameters
    ----------
    sampling_rate : int
        16000 or 32000.
    device : str or torch.device
    backbone : str
        ``"cnn14"`` (the default of every release before MERT) or ``"mert"``. audioldm_eval at 8dc07ee
        defaults to ``"mert"``: pass it explicitly when porting code that relied on that.
    models_dir, batch_size, cache, progress :
        As ``audiofidelity.evaluate``.
    write_json : bool
        Write ``<time>_<generated folder name>.json`` beside the generated folder, as the original does.
    """

    def __init__(self, sampling_rate: int, device="cpu", backbone: str = DEFAULTS.backbone, *, models_dir=None,
                 batch_size: int | None = None, cache: bool = True, progress: bool = True,
                 write_json: bool = True) -> None:
        if sampling_rate not in (16000, 32000):
            raise ValueError("We only support the evaluation on 16kHz and 32kHz sampling rate.")
        self.sampling_rate, self.backbone, self.device = sampling_rate, backbone, str(device)
        self.write_json = write_json
        self._settings = dict(backbone=backbone, sample_rate=sampling_rate, models_dir=models_dir,
                              device=self.device, cache=cache, progress=progress,
                              **({"batch_size": batch_size} if batch_size else {}))
        self._evaluators: dict[tuple[str, ...], Evaluator] = {}
        self.last_report: dict | None = None
        self._evaluator(MAIN_METRICS)  # load the models now, as the original's constructor does

    def _make_evaluator(self, metrics: tuple[str, ...]) -> Evaluator:
        return Evaluator(metrics=list(metrics), **self._settings)

    def _evaluator(self, metrics: tuple[str, ...]) -> Evaluator:
        if metrics not in self._evaluators:
            self._evaluators[metrics] = self._make_evaluator(metrics)
        return self._evaluators[metrics]

    def main(self, generate_files_path, groundtruth_path, limit_num: int | None = None) -> dict[str, float]:
        """FAD, KL (softmax, sigmoid), IS and FD between two folders, as the original's ``main``."""
        return self.calculate_metrics(generate_files_path, groundtruth_path, None, limit_num)

    def calculate_metrics(self, generate_files_path, groundtruth_path, same_name=None, limit_num: int | None = None,
                          calculate_psnr_ssim: bool = False, calculate_lsd: bool = False,
                          recalculate: bool = False) -> dict[str, float]:
        """The original's ``calculate_metrics``. ``same_name`` is decided from the folders (as ``main`` does);
        ``recalculate`` is accepted for compatibility (features come from the content-keyed cache, which
        cannot go stale)."""
        metrics = MAIN_METRICS + ("psnr", "ssim") * calculate_psnr_ssim + ("lsd",) * calculate_lsd
        result = self._evaluator(metrics).evaluate(generate_files_path, groundtruth_path, limit=limit_num)
        return self._finish(result, metrics, Path(generate_files_path))

    def _finish(self, result: EvaluationResult, metrics: tuple[str, ...], generated: Path) -> dict[str, float]:
        self.last_report = result.report
        out = result_dict(result.report, metrics)
        for key, reason in result.report["unavailable"].items():
            if not (key in out and out[key] == UNPAIRED_SENTINEL):
                log.warning("%s not computed: %s", key, reason)
        if self.write_json:
            generated = generated.absolute()
            stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H:%M:%S")
            path = generated.parent / f"{stamp}_{generated.name}.json"
            write_text(path, json.dumps(out, indent=4), option="result JSON")
            log.info("wrote %s", path)
        return out


class EvaluationHelperParallel(EvaluationHelper):
    """audioldm_eval's ``EvaluationHelperParallel``: features computed on ``num_gpus`` devices at once.

    Each device takes a contiguous shard of each sorted folder (no file padded, repeated or dropped, so
    the numbers equal the one-device run, unlike the original's ``DistributedSampler`` padding); with
    fewer GPUs than asked for it uses those there are (CPU when none), with a warning. ``main`` returns the
    result dict (the original returns None and only writes the JSON).
    """

    def __init__(self, sampling_rate: int, num_gpus: int, batch_size: int = 1, backbone: str = DEFAULTS.backbone,
                 **options) -> None:
        from ..multidevice import available_devices

        self.devices = available_devices(num_gpus)
        super().__init__(sampling_rate, self.devices[0], backbone, batch_size=batch_size, **options)

    def _make_evaluator(self, metrics: tuple[str, ...]) -> Evaluator:
        from ..multidevice import MultiDeviceEvaluator

        settings = {k: v for k, v in self._settings.items() if k != "device"}
        return MultiDeviceEvaluator(self.devices, metrics=list(metrics), **settings)


__all__ = ["EvaluationHelper", "EvaluationHelperParallel", "RESULT_KEYS"]
