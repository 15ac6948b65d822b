"""Helpers shared by the verify scripts (imported as a sibling module)."""
from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path


def audio_files(paths: list[Path]) -> list[Path]:
    """The files named, and the files directly inside the folders named, sorted per folder."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p])
    return files


def relative_error(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs| (0 when both are empty)."""
    import numpy as np

    if np.size(theirs) == 0:
        return 0.0
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))


def verdict(failed: list[str], ok_message: str) -> int:
    """Print the verdict (failures to stderr) and return the exit status: 1 if anything failed."""
    import sys

    if failed:
        print(f"FAIL: {'; '.join(failed)}", file=sys.stderr)
        return 1
    print(f"OK: {ok_message}")
    return 0


def original_fad(a, b) -> float:
    """FAD as audioldm_eval, frechet_audio_distance and fadtk compute it (``scipy.linalg.sqrtm``), transcribed."""
    import numpy as np
    import scipy.linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2)).real
    return float((mu1 - mu2).dot(mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def add_two_set_options(parser) -> None:
    """``--models-dir``, ``--audio`` and ``--reference`` (the two sets FAD compares) and ``--tolerance``."""
    parser.add_argument("--models-dir", type=Path, default=None, help="directory holding the exported artifact")
    parser.add_argument("--audio", type=Path, action="append", required=True, help="first set: file or folder")
    parser.add_argument("--reference", type=Path, action="append", required=True, help="second set: file or folder")
    parser.add_argument("--tolerance", type=float, default=1e-4)


def fad_difference(sets: dict) -> float:
    """FAD between ``sets["audio"]`` and ``sets["reference"]`` by each side (``{"ours": rows, "original": rows}``,
    ours with audiofidelity's formula, the original's transcribed); prints both; returns the relative difference."""
    from audiofidelity.metrics.frechet import frechet_distance_from_features

    ours = frechet_distance_from_features(sets["audio"]["ours"], sets["reference"]["ours"])
    theirs = original_fad(sets["audio"]["original"], sets["reference"]["original"])
    error = abs(ours / theirs - 1) if theirs else abs(ours)
    print(f"FAD: ours {ours:.6f}, original {theirs:.6f}, relative difference {error:.3g}")
    return error


class Unavailable(types.ModuleType):
    """Stands in for a module (or a name in one) that a package imports but is not installed here: importing it
    works, any call raises, naming it. Only for imports the computation under test never uses."""

    __path__: list[str] = []

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Unavailable(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self.__name__} was used, but it is not available here")


@contextlib.contextmanager
def _placeholders(registered: list[str]):
    try:
        yield
    finally:
        for name in registered:
            if isinstance(sys.modules.get(name), Unavailable):
                del sys.modules[name]


def import_with_placeholders(package: str, *, install_hint: str, patch: dict | None = None) -> types.ModuleType:
    """Import ``package`` where some of its imports are absent: each module it fails to find becomes an
    ``Unavailable`` for the import only (later imports elsewhere still see it missing), and ``patch``
    (``{(object, attribute): value}``) is in force during the import only. Prints what was stood in for."""
    if importlib.util.find_spec(package) is None:
        raise SystemExit(f"the {package} package is not installed: {install_hint}")
    registered: list[str] = []
    patch = patch or {}
    saved = {(owner, name): vars(owner)[name] if name in vars(owner) else getattr(owner, name)
             for owner, name in patch}
    with _placeholders(registered):
        for (owner, name), value in patch.items():
            setattr(owner, name, value)
        try:
            while True:
                try:
                    loaded = importlib.import_module(package)
                    break
                except ModuleNotFoundError as exc:
                    if exc.name is None or exc.name in registered or exc.name.split(".")[0] == package:
                        raise SystemExit(f"cannot import {package}: {exc}; {install_hint}") from None
                    registered.append(exc.name)
                    sys.modules[exc.name] = Unavailable(exc.name)
        finally:
            for (owner, name), value in saved.items():
                setattr(owner, name, value)
    if registered:
        print(f"{package}: imported with placeholders for absent modules it never uses here: {', '.join(registered)}")
    return loaded


def fad_model_conditioning(name: str):
    """The ``Conditioning`` ``--fad-model name`` feeds its artifact with (its toolkit's settings)."""
    import dataclasses

    from audiofidelity.audio import Conditioning
    from audiofidelity.registry import fad_model

    return dataclasses.replace(Conditioning(), **dict(fad_model(name).conditioning))


def compare_two_sets(parser, args, embed, *, unit: str, count: str, against: str) -> int:
    """For every file of ``--audio`` and ``--reference``: ``embed(path) -> (ours, original, seconds, how many
    ``count``: frames, windows)``; prints
    each file's relative difference, then FAD between the sets by each side; the verdict against ``--tolerance``
    (exit status 1 above it, or when a file's shapes differ)."""
    import numpy as np

    sets: dict[str, dict[str, list]] = {}
    worst = 0.0
    print(f"{'file':<28} {'seconds':>8} {count:>7} {unit + ' rel':>14}")
    for label, paths in (("audio", args.audio), ("reference", args.reference)):
        files = audio_files(paths)
        if not files:
            parser.error(f"no audio files found under --{label}")
        sets[label] = {"ours": [], "original": []}
        for path in files:
            ours, theirs, seconds, rows = embed(path)
            if np.shape(ours) != np.shape(theirs):
                parser.exit(1, f"FAIL: {path.name}: {np.shape(ours)} {unit}, the original gives {np.shape(theirs)}\n")
            error = relative_error(ours, theirs)
            worst = max(worst, error)
            sets[label]["ours"].append(np.atleast_2d(ours))
            sets[label]["original"].append(np.atleast_2d(theirs))
            print(f"{path.name:<28} {seconds:>8.3f} {rows:>7} {error:>14.3g}")
    fad_error = fad_difference({label: {side: np.concatenate(v) for side, v in s.items()} for label, s in sets.items()})
    failed = [f"{what} above tolerance {args.tolerance:g}" for what, bad in
              ((unit, worst > args.tolerance), ("FAD", fad_error > args.tolerance)) if bad]
    return verdict(failed, f"{unit} and FAD within {args.tolerance:g} of {against}")


# -- LAION-CLAP's own model, offline (verify_clap.py, verify_clap_text.py, and clap_original.py in a side virtualenv) --

SMALL_TEXT_TOWER = dict(model_type="transformer", context_length=77, vocab_size=49408, width=512, heads=8, layers=1)
"""A one-layer text tower for ``CLAP`` where only the audio side runs (the published RoBERTa comes from the Hub)."""
AUDIO_KEYS = ("audio_branch.", "audio_projection.", "audio_transform.", "logit_scale_a")
"""Keys of ``CLAP`` outside its text tower (the stand-in checkpoints carry these, as the published ones do)."""


def _no_hub_tokenizer(cls, name: str, *args, **kwargs) -> Unavailable:
    """Stands in for ``from_pretrained`` of transformers' tokenizers during laion_clap's import, which loads three
    from the Hub that the audio path never uses."""
    return Unavailable(f"tokenizer {name}")


def laion_clap_package(install_hint: str) -> types.ModuleType:
    """laion_clap, importable offline: absent training-only modules stood in for, no tokenizer fetched."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    return import_with_placeholders("laion_clap", patch={(PreTrainedTokenizerBase, "from_pretrained"):
                                                         classmethod(_no_hub_tokenizer)}, install_hint=install_hint)


def laion_clap_model(amodel: str, fusion: bool, text_cfg: dict):
    """laion_clap's ``CLAP`` as ``CLAP_Module(enable_fusion=fusion, amodel=amodel)`` builds it (a fusion model with
    ``fusion_type="aff_2d"``), text tower ``text_cfg``, randomly initialised, in eval mode (laion_clap imported)."""
    factory, model = sys.modules["clap_module.factory"], sys.modules["clap_module.model"]
    config = factory._MODEL_CONFIGS[amodel]
    return model.CLAP(embed_dim=config["embed_dim"], audio_cfg=config["audio_cfg"], text_cfg=text_cfg,
                      enable_fusion=fusion, **({"fusion_type": "aff_2d"} if fusion else {})).eval()


def load_audio_side(model, checkpoint: str) -> None:
    """Load a LAION-CLAP checkpoint's audio tower and projection into ``model`` (through laion_clap's
    ``load_state_dict``), naming any audio key missing or unexpected."""
    state = sys.modules["clap_module.factory"].load_state_dict(str(checkpoint))
    result = model.load_state_dict({k: v for k, v in state.items() if k.startswith(AUDIO_KEYS)}, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(AUDIO_KEYS)]
    if missing or result.unexpected_keys:
        raise SystemExit(f"{checkpoint} does not load into laion_clap's CLAP: missing {missing[:5]}, unexpected "
                         f"{result.unexpected_keys[:5]}")


def clap_module(package: types.ModuleType, model, amodel: str, fusion: bool):
    """A ``CLAP_Module`` around ``model`` without its ``__init__`` (which fetches RoBERTa's tokenizer)."""
    import torch

    wrapper = package.CLAP_Module.__new__(package.CLAP_Module)
    torch.nn.Module.__init__(wrapper)
    wrapper.model, wrapper.enable_fusion = model, fusion
    wrapper.model_cfg = sys.modules["clap_module.factory"]._MODEL_CONFIGS[amodel]
    return wrapper
