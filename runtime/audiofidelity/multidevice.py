"""Split feature extraction across devices (threads in one process) or across ``torchrun`` ranks; the numbers
equal a one-device run.

Devices of one process cut each folder listing into contiguous shards; ``torchrun`` ranks deal it by a hash of each
file's name (``hashed_shards``), so a file keeps its rank, and that rank's feature cache, when files are added or
removed. Every device runs its shard with its own copy of the programs (in a thread: the model calls release the GIL),
and the shards are joined in listing order, so files, rows and skipped files come out exactly as from one device. A
clip's features do not depend on which shard it falls in (fixed-shape passes, ``runner``): the numbers are
bit-identical to a one-device run (with the same thread count) wherever the shards are cut. Asking for more devices
than exist falls back to those that do, with a warning.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from .evaluate import Evaluator
from .features import SideFeatures, Watch
from .settings import EvaluationSettings

log = logging.getLogger(__name__)


def available_devices(requested: int) -> list[str]:
    """Up to ``requested`` CUDA devices; fewer (warned) when fewer exist, ``["cpu"]`` when there is none."""
    import torch

    count = torch.cuda.device_count()
    if count < requested:
        warnings.warn(f"{requested} GPU(s) requested, {count} available: running on "
                      f"{'cuda:0..' + str(count - 1) if count else 'the CPU'}", RuntimeWarning, stacklevel=2)
    return [f"cuda:{i}" for i in range(min(requested, count))] or ["cpu"]


def shard(names: list[str], parts: int) -> list[list[str]]:
    """``names`` cut into ``parts`` contiguous shards of ceil(n / parts) (the last takes the rest; trailing
    shards may be empty). No file is repeated or dropped."""
    size = -(-len(names) // parts)  # ceil
    return [names[i * size:(i + 1) * size] for i in range(parts)]


def hashed_shards(names: list[str], parts: int) -> list[list[str]]:
    """``names`` dealt to ``parts`` shards by the SHA-256 of each name (as the file system holds it), each in listing
    order: a file's shard does not depend on the other files. No file is repeated or dropped.

    The name, not the content: a rank would otherwise read every file of the folder to find its own. A file whose
    content changes keeps its rank, whose content-keyed cache then misses and computes it again.
    """
    shards: list[list[str]] = [[] for _ in range(parts)]
    for name in names:
        digest = hashlib.sha256(os.fsencode(name)).digest()
        shards[int.from_bytes(digest[:8], "big") % parts].append(name)
    return shards


def join(folder: Path, names: list[str], parts: list[SideFeatures]) -> SideFeatures:
    """One side's features from its shards, in listing order whichever shard holds each file: the files and their
    rows, and the skipped files (after those whose names are reported escaped, as one device reports them)."""
    position = {name: index for index, name in enumerate(names)}
    joined = SideFeatures(folder, names)
    held = sorted(((position[name], part, row) for part in parts for row, name in enumerate(part.files)),
                  key=lambda item: item[0])
    joined.files = [part.files[row] for _, part, row in held]
    for output in dict.fromkeys(output for part in parts for output in part.per_file):
        joined.per_file[output] = [part.per_file[output][row] for _, part, row in held]
    skipped = sorted((problem for part in parts for problem in part.problems),
                     key=lambda problem: position.get(problem["file"], len(names)))
    reported = {problem["file"] for problem in joined.problems}
    joined.problems += [problem for problem in skipped if problem["file"] not in reported]
    return joined


class MultiDeviceEvaluator(Evaluator):
    """An ``Evaluator`` whose feature extraction runs on several devices at once.

    ``devices``: e.g. ``["cuda:0", "cuda:1"]``; other arguments as ``Evaluator`` (its ``device`` is the first).
    """

    def __init__(self, devices: list[str], settings: EvaluationSettings | None = None, **keywords) -> None:
        if not devices:
            raise ValueError("need at least one device")
        base = settings or EvaluationSettings.from_keywords(**keywords)
        super().__init__(dataclasses.replace(base, device=devices[0]))
        self.replicas = [self] + [Evaluator(dataclasses.replace(base, device=device)) for device in devices[1:]]

    def close(self, *, now: bool = False) -> None:
        for replica in self.replicas[1:]:
            replica.close(now=now)
        super().close(now=now)

    def side_features(self, folder: Path, names: list[str], label: str, watch: Watch | None = None,
                      fold: Callable[[SideFeatures], None] | None = None) -> SideFeatures:
        """One shard per device, in threads; ``watch`` is told only of a single device's run; ``fold`` once, on the
        joined shards (in listing order, as one device would)."""
        if len(self.replicas) == 1 or not self.stages:
            return super().side_features(folder, names, label, watch, fold)
        shards = shard(names, len(self.replicas))
        with ThreadPoolExecutor(len(self.replicas)) as pool:
            parts = list(pool.map(
                lambda job: Evaluator.side_features(job[0], folder, job[1], f"{label} [{job[0].device}]"),
                zip(self.replicas, shards)))
        joined = join(folder, names, parts)
        if fold is not None:
            fold(joined)
        return joined


def distributed_rank() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when launched by ``torchrun`` with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))


def rank_device(device: str, local_rank: int) -> str:
    """The device of one rank: ``cuda`` (or ``cuda:N``, ignored) becomes ``cuda:<local rank>``; CPU stays."""
    return f"cuda:{local_rank}" if device.startswith("cuda") else device


class DistributedEvaluator(Evaluator):
    """An ``Evaluator`` for one ``torchrun`` rank: features of its shard, gathered so every rank has all.

    Initialises the process group (gloo for CPU, NCCL for CUDA) unless one exists.
    """

    def __init__(self, settings: EvaluationSettings | None = None, **keywords) -> None:
        import torch.distributed as dist

        found = distributed_rank()
        if found is None:
            raise RuntimeError("DistributedEvaluator needs torchrun (WORLD_SIZE > 1)")
        self.rank, self.world, local = found
        base = settings or EvaluationSettings.from_keywords(**keywords)
        device = rank_device(base.device, local)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        super().__init__(dataclasses.replace(base, device=device))

    def _provenance(self, limit: int | None, signal_keys: list[str]) -> dict:
        import torch.distributed as dist

        return {**super()._provenance(limit, signal_keys),
                "distributed": {"world_size": self.world, "backend": dist.get_backend()}}

    def side_features(self, folder: Path, names: list[str], label: str, watch: Watch | None = None,
                      fold: Callable[[SideFeatures], None] | None = None) -> SideFeatures:
        """This rank's shard (``hashed_shards``; ``watch`` follows it), gathered from every rank; ``fold`` folds this
        rank's rows only (its caller merges every rank's statistics: ``stats.RoleAccumulator.all_reduce``)."""
        import torch.distributed as dist

        mine = hashed_shards(names, self.world)[self.rank]
        part = super().side_features(folder, mine, f"{label} [rank {self.rank}]", watch, fold)
        parts: list = [None] * self.world
        dist.all_gather_object(parts, part)
        return join(folder, names, parts)
