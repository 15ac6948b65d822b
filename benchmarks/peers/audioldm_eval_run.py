#!/usr/bin/env python3
"""The original audioldm_eval on two folders (CNN14 16 kHz, FAD, FD, KL, IS, PSNR, SSIM); one JSON line on stdout.

    python audioldm_eval_run.py GENERATED REFERENCE

Run by ``benchmarks/compare_peers.py`` in audioldm_eval's own virtualenv, with the stand-in weights where the
package looks for them. It does what ``EvaluationHelper.main`` does, with PSNR/SSIM on and ``recalculate=True``
(``main`` reuses the feature caches it writes beside the folders). Times: ``import_s`` from interpreter start to
the package imported, ``model_s`` building the helper (VGGish through torch.hub, CNN14), ``eval_s`` the
evaluation. The package's own output goes to stdout before the JSON line.
"""
import time

START = time.perf_counter()

import math  # noqa: E402

from runner_io import folders, report  # noqa: E402


def main() -> None:
    args = folders(__doc__)
    import torch
    from audioldm_eval import EvaluationHelper

    imported = time.perf_counter()
    helper = EvaluationHelper(16000, torch.device("cpu"), backbone="cnn14")
    built = time.perf_counter()
    helper.file_init_check(args.generated)
    helper.file_init_check(args.reference)
    same_name = helper.get_filename_intersection_ratio(args.generated, args.reference)
    metrics = helper.calculate_metrics(args.generated, args.reference, same_name, calculate_psnr_ssim=True,
                                       recalculate=True)
    report(START, imported, built, {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()})


if __name__ == "__main__":
    main()
