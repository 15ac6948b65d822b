"""Reference statistics files: a reference set's Gaussian statistics, computed once and reused by every ``eval``.

A ``.npz`` holds, per feature role (``embedding`` for FD, ``fad`` for FAD), the mean, the float64 sample
covariance and the number of rows, plus the settings that produced them (artifact sha256s, conditioning,
rates, options). ``eval GEN ref.npz`` compares against them and refuses a file made with other artifacts
or settings. The features themselves are stored too when a role has no more rows than dimensions (then
the covariance is singular and FD is computed exactly from the features, as for a folder) or when asked
for (``--features``: KID, per-layer FD and resampling the reference in ``--bootstrap`` need them).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MetricUnavailableError, StatsFileError, literal
from .metrics import frechet
from .metrics.gaussian import GaussianStats
from .outputs import atomic_write, npz

STATS_FORMAT = 1
STATS_ROLES = ("embedding", "fad", "layers")


def read_arrays(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles); ``StatsFileError`` naming ``what`` it should be when the file is
    missing, garbage, truncated or not a zip archive."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).replace(str(path), "the file").split(".")[0]
        raise StatsFileError(f"{{path}} is not {literal(what)}: {literal(reason)}", path=path) from exc


def settings_differences(stored: dict[str, Any], settings: dict[str, Any]) -> str:
    """Every setting of this evaluation (``settings``) that differs from those a file was made with (``stored``),
    as ``"name: file X, this run Y; ..."``, or ``""``. ``settings["artifacts"]`` (name -> sha256 and frontend) needs
    only the run's own artifacts in the file."""
    def same(a: Any, b: Any) -> bool:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    mine, theirs = dict(settings), dict(stored)
    kept = theirs.pop("artifacts", {})
    differ = [(f"artifact {name}", kept.get(name), spec)
              for name, spec in mine.pop("artifacts", {}).items() if not same(kept.get(name), spec)]
    differ += [(k, theirs.get(k), mine.get(k)) for k in sorted(set(mine) | set(theirs))
               if not same(mine.get(k), theirs.get(k))]
    return "; ".join(f"{k}: file {a!r}, this run {b!r}" for k, a, b in differ)


def role_accumulators(roles, *, keep_features: bool = False) -> dict[str, RoleAccumulator]:
    """An empty ``RoleAccumulator`` for each of ``roles`` (``layers`` without statistics)."""
    return {role: RoleAccumulator(keep=keep_features, gaussian=role != "layers") for role in roles}


def save_gaussian(stats: GaussianStats, path: str | Path, *, role: str = "fad", settings: dict | None = None) -> None:
    """Write a reference-statistics file (``eval GEN FILE.npz``, ``stats``) holding ``stats`` as this ``role``."""
    if stats.mean is None:
        raise ValueError("no embedding rows to save: the statistics are empty")
    ReferenceStats(settings or {}, [], {role: RoleStatistics(stats.mean, stats.cov, stats.count)}).save(path)


def load_gaussian(path: str | Path, *, role: str = "fad") -> GaussianStats:
    """One role's statistics from a reference-statistics file, as ``GaussianStats``."""
    stats = ReferenceStats.load(path).role(role)
    return GaussianStats(stats.count, np.asarray(stats.mean, np.float64),
                         np.asarray(stats.cov, np.float64) * (stats.count - 1))


@dataclass
class RoleStatistics:
    """One role's statistics: mean (d,), covariance (d, d), row count, and optionally the rows per file."""

    mean: np.ndarray
    cov: np.ndarray
    count: int
    per_file: list[np.ndarray] | None = None


@dataclass
class RoleAccumulator:
    """One role's statistics, folded in as a folder's chunks of files come out of the models: a reference set of any
    size then holds one mean and co-moment, not its rows. The per-file rows are kept only while there are no more of
    them than dimensions (the covariance is then singular and FD is computed from the rows) or with ``keep``
    (``--features``). ``gaussian`` False (``layers``): no statistics, the files counted and, with ``keep``, kept.

    Folded chunk by chunk, the statistics equal those of all rows at once to float64 rounding (Chan et al.'s
    pairwise update, ``GaussianStats.merge``), the same bits on every run of the same listing.
    """

    keep: bool = False
    gaussian: bool = True
    stats: GaussianStats = field(default_factory=GaussianStats)
    files: int = 0
    per_file: list[np.ndarray] | None = field(default_factory=list)

    def add(self, arrays: list[np.ndarray]) -> None:
        """Fold in the arrays of some files (each (d,) or (rows, d)), in listing order."""
        if not arrays:
            return
        self.files += len(arrays)
        if self.gaussian:
            self.stats.update(np.concatenate([np.atleast_2d(a) for a in arrays]))
        if self.per_file is not None:
            self.per_file.extend(arrays)
            if not self._keeps_rows():
                self.per_file = None

    def all_reduce(self) -> None:
        """Merge every ``torch.distributed`` rank's accumulator, in rank order, on every rank (nothing without
        one): the statistics by ``GaussianStats.all_reduce``, the kept rows gathered."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        self.stats.all_reduce()
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.files, self.per_file))
        self.files = sum(files for files, _ in gathered)
        kept = [rows for _, rows in gathered]
        self.per_file = None if any(rows is None for rows in kept) or not self._keeps_rows() \
            else [a for rows in kept for a in rows]

    def _keeps_rows(self) -> bool:
        return self.keep or (self.gaussian and self.stats.count <= (self.stats.dim or 0))

    def statistics(self) -> RoleStatistics:
        """What a statistics file stores for the role."""
        if not self.gaussian:
            return RoleStatistics(np.zeros(0), np.zeros((0, 0)), self.files, self.per_file)
        if self.stats.count < 2:
            raise MetricUnavailableError(f"need a (n >= 2, d) feature matrix for a covariance, got {self.stats.count} "
                                         f"row(s)")
        assert self.stats.mean is not None  # two rows or more
        return RoleStatistics(self.stats.mean, self.stats.cov, self.stats.count, self.per_file)


@dataclass
class ReferenceStats:
    """What unpaired metrics need from a reference set, and the settings it was computed with."""

    settings: dict[str, Any]
    files: list[str]
    roles: dict[str, RoleStatistics] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_features(cls, per_file: dict[str, list[np.ndarray]], files: list[str], settings: dict[str, Any], *,
                      keep_features: bool = False) -> "ReferenceStats":
        """Statistics of each role's per-file feature arrays (``roles``: role -> per-file arrays), all at once."""
        accumulators = role_accumulators(per_file, keep_features=keep_features)
        for role, arrays in per_file.items():
            accumulators[role].add(list(arrays))
        return cls.from_accumulators(accumulators, files, settings)

    @classmethod
    def from_accumulators(cls, accumulators: dict[str, RoleAccumulator], files: list[str],
                          settings: dict[str, Any]) -> "ReferenceStats":
        """Statistics of each role's ``RoleAccumulator``, folded in as the files were computed."""
        return cls(settings, list(files), {role: acc.statistics() for role, acc in accumulators.items()})

    def save(self, path: str | Path, *, fadtk_name: str | None = None, option: str = "statistics file") -> None:
        """Write the file (atomically, under exactly this name); ``fadtk_name``: also the FAD statistics as fadtk's
        ``<name>.mu`` / ``<name>.cov`` keys, so fadtk's ``load_stats`` reads the same file; ``option``: what the
        path was given as, for the ``OutputPathError`` raised when it cannot be written."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(STATS_FORMAT),
            "settings": np.array(json.dumps(self.settings, sort_keys=True)),
            "files": np.array(self.files),
        }
        for role, stats in self.roles.items():
            arrays[f"{role}/mean"], arrays[f"{role}/cov"] = stats.mean, stats.cov
            arrays[f"{role}/count"] = np.array(stats.count)
            if stats.per_file is not None:
                for i, a in enumerate(stats.per_file):
                    arrays[f"{role}/per_file/{i}"] = a
        if fadtk_name is not None:
            arrays[f"{fadtk_name}.mu"], arrays[f"{fadtk_name}.cov"] = self.role("fad").mean, self.role("fad").cov
        atomic_write(path, npz(arrays), option=option)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceStats":
        """Read a statistics file.

        Raises
        ------
        StatsFileError
            If the file is not an audiofidelity statistics file (or of another format version).
        """
        arrays = read_arrays(path, "an audiofidelity statistics file (make one with 'audiofidelity stats REF "
                                   "--out FILE.npz')")
        if "format" not in arrays or "settings" not in arrays:
            raise StatsFileError("{path} is not an audiofidelity statistics file (make one with "
                                 "'audiofidelity stats REF --out FILE.npz')", path=path)
        if int(arrays["format"]) != STATS_FORMAT:
            raise StatsFileError(f"{{path}} has statistics format {int(arrays['format'])}; this version reads "
                                 f"{STATS_FORMAT}: recompute it with 'audiofidelity stats'", path=path)
        roles = {}
        for role in STATS_ROLES:
            if f"{role}/count" not in arrays:
                continue
            count = int(arrays[f"{role}/count"])
            per_file = [arrays[f"{role}/per_file/{i}"] for i in range(len(arrays["files"]))] \
                if f"{role}/per_file/0" in arrays else None
            roles[role] = RoleStatistics(arrays[f"{role}/mean"], arrays[f"{role}/cov"], count, per_file)
        return cls(json.loads(str(arrays["settings"])), [str(f) for f in arrays["files"]], roles, str(path))

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Raise ``StatsFileError`` naming every setting that differs from this evaluation's
        (``settings_differences``)."""
        differ = settings_differences(self.settings, settings)
        if differ:
            raise StatsFileError(f"reference statistics {{path}} were made with other artifacts or settings "
                                 f"({literal(differ)}); recompute them with 'audiofidelity stats' and the same options",
                                 path=self.source)

    def role(self, role: str) -> RoleStatistics:
        if role not in self.roles:
            raise MetricUnavailableError(f"the reference statistics file holds no {role!r} statistics")
        return self.roles[role]

    def per_file(self, role: str) -> list[np.ndarray]:
        """The stored per-file arrays of ``role``; ValueError when the file was made without them."""
        arrays = self.role(role).per_file
        if arrays is None:
            raise MetricUnavailableError(f"the reference statistics file stores no {role} features (needed here); "
                             f"make it with 'audiofidelity stats ... --features'")
        return arrays

    def features(self, role: str) -> np.ndarray:
        """The stored rows of ``role``, all files stacked; ValueError when the file was made without them."""
        return np.concatenate([np.atleast_2d(a) for a in self.per_file(role)])

    def frechet_distance(self, role: str, generated: np.ndarray) -> float:
        """FD between the generated rows and this reference, exact for singular covariances on either side."""
        stats = self.role(role)
        if stats.per_file is not None:
            return frechet.frechet_distance_from_features(generated, self.features(role))
        return frechet.frechet_distance_to_statistics(generated, stats.mean, stats.cov)

    def frechet_distance_checked(self, role: str, generated: np.ndarray) -> tuple[float, dict]:
        """``frechet_distance`` with the notes and warnings a folder reference gets (the rows when the file stores
        them, else its Gaussian: ``frechet.frechet_distance_to_statistics_checked``)."""
        stats = self.role(role)
        if stats.per_file is not None:
            return frechet.frechet_distance_checked(generated, self.features(role))
        return frechet.frechet_distance_to_statistics_checked(generated, stats.mean, stats.cov, stats.count)
