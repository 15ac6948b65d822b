#!/usr/bin/env python3
"""frechet_audio_distance's VGGish FAD between two folders; one JSON line on stdout.

    python frechet_audio_distance_run.py GENERATED REFERENCE

Run by ``benchmarks/compare_peers.py`` in the package's own virtualenv, with the stand-in VGGish weights where
torch.hub looks for them. Its defaults: no PCA, the embedding before the last ReLU, 8 loading threads.
Times: ``import_s`` from interpreter start to the package imported, ``model_s`` building ``FrechetAudioDistance``
(VGGish through torch.hub), ``eval_s`` its ``score``.
"""
import time

START = time.perf_counter()

from runner_io import folders, report  # noqa: E402


def main() -> None:
    args = folders(__doc__)
    from frechet_audio_distance import FrechetAudioDistance

    imported = time.perf_counter()
    fad = FrechetAudioDistance(model_name="vggish", sample_rate=16000, use_pca=False, use_activation=False,
                               verbose=False)
    built = time.perf_counter()
    score = fad.score(args.reference, args.generated, dtype="float32")
    report(START, imported, built, {"frechet_audio_distance": float(score)})


if __name__ == "__main__":
    main()
