#!/usr/bin/env python3
"""fadtk's VGGish FAD between two folders, as ``fadtk vggish REFERENCE GENERATED`` computes it; one JSON line.

    python fadtk_run.py GENERATED REFERENCE [--workers 8]

Run by ``benchmarks/compare_peers.py`` in fadtk's own virtualenv, with the stand-in VGGish weights where torch.hub
looks for them. As its command line: embeddings of each folder in ``--workers`` spawned processes (each loads
the model: so model construction is inside ``eval_s``), written under the folders (``convert/``,
``embeddings/``, ``stats/``), then the score. Times: ``import_s`` from interpreter start to the package imported,
``eval_s`` the rest.
"""
import time

START = time.perf_counter()

from runner_io import folders, report  # noqa: E402


def main() -> None:
    args = folders(__doc__, [("--workers", {"type": int, "default": 8, "help": "fadtk's -w (its default 8)"})])
    from fadtk.fad import FrechetAudioDistance
    from fadtk.fad_batch import cache_embedding_files
    from fadtk.model_loader import VGGishModel

    imported = time.perf_counter()
    model = VGGishModel()
    for folder in (args.reference, args.generated):
        cache_embedding_files(folder, model, workers=args.workers)
    fad = FrechetAudioDistance(model, audio_load_worker=args.workers, load_model=False)
    score = fad.score(args.reference, args.generated)
    report(START, imported, None, {"frechet_audio_distance": float(score)}, workers=args.workers)


if __name__ == "__main__":
    main()
