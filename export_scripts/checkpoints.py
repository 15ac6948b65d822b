"""Checkpoint loading shared by the per-architecture export modules."""
from __future__ import annotations

from pathlib import Path

import torch


def load_strict(module: torch.nn.Module, state: dict, source: Path, description: str,
                ignore: tuple[str, ...] = ()) -> torch.nn.Module:
    """Load ``state`` into ``module`` after a key check that names what is missing or extra; return it in eval mode.

    ``ignore``: keys the checkpoint carries that the clean module does not need (checked by the caller).
    """
    given = {k: v for k, v in state.items() if k not in ignore}
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(given)), sorted(set(given) - expected)
    if missing or unexpected:
        raise SystemExit(f"{source}: not a {description}; missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    module.load_state_dict(given, strict=True)
    return module.eval()


def clap_state_dict(source: Path) -> dict:
    """A LAION-CLAP checkpoint's whole ``CLAP`` state dict (``{"state_dict": {"module.<key>": tensor}}``, as its
    training script saves it), the ``module.`` prefix dropped."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise SystemExit(f"{source}: expected a LAION-CLAP checkpoint {{'state_dict': {{'module.<key>': tensor}}}}, "
                         f"got {type(checkpoint).__name__}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}

