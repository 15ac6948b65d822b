"""Memory guard: a model pass's peak memory, estimated from its input size before it runs, against a budget.

Each artifact's manifest carries a memory model of one input item (``inputs[0].memory``: fixed bytes plus
bytes per unit and per unit squared of one axis, measured at export time). A clip whose pass would not fit
the budget (default: half the memory available when the run starts; ``--max-memory``) is refused by name,
before any allocation, instead of taking the machine down.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_FRACTION = 0.5
"""Share of the available memory one model pass may use by default."""
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}


def _meminfo_available() -> int | None:
    """Linux ``MemAvailable``, else the free physical pages, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What this process's cgroup (v2) may still allocate: ``memory.max - memory.current``, or None (no limit)."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
        folder = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(folder, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.current")) as f:
            return max(int(limit) - int(f.read()), 0)
    except (OSError, ValueError, StopIteration):
        return None


def _address_space_available() -> int | None:
    """Address space left under ``RLIMIT_AS`` (``ulimit -v``, ``prlimit``): the limit less ``VmSize``, or None."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        return max(limit - size, 0)
    except (ImportError, OSError, ValueError, StopIteration):
        return None


def available_bytes() -> int | None:
    """Memory this process can still get now: the least of the machine's ``MemAvailable``, its cgroup's
    remaining limit (a container's host memory is not its own) and the address space left under
    ``RLIMIT_AS``; None where none can be known."""
    known = [n for n in (_meminfo_available(), _cgroup_available(), _address_space_available()) if n is not None]
    return min(known) if known else None


def default_budget() -> int | None:
    """``DEFAULT_FRACTION`` of the available memory, or None (no guard) where it cannot be known."""
    available = available_bytes()
    return int(available * DEFAULT_FRACTION) if available is not None else None


def parse_size(text: str) -> int:
    """Bytes from ``"4G"``, ``"512M"``, ``"1.5GiB"`` or ``"1000000"`` (decimal units; ``i`` for binary).

    Raises
    ------
    ValueError
        With the accepted forms.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?[iI]?)[bB]?\s*", str(text))
    if not match or (match.group(2).upper() == "I"):
        raise ValueError(f"not a memory size: {text!r}; write e.g. 4G, 512M, 1.5GiB or a number of bytes")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size < 1:  # 0.5 would round to a budget of 0 bytes, refusing every clip
        raise ValueError(f"memory size must be at least 1 byte, got {text!r}")
    return size


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest decimal unit that keeps it >= 1 (``2.4 GB``)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes of one forward pass over ``items`` inputs of length ``n`` along ``axis`` (None: items of
    fixed size): ``fixed + items * (per_item + per_unit * n + per_unit_squared * n**2)``."""

    axis: str | None
    fixed_bytes: float
    bytes_per_item: float = 0.0
    bytes_per_unit: float = 0.0
    bytes_per_unit_squared: float = 0.0

    @classmethod
    def from_manifest(cls, spec: dict[str, Any] | None) -> "MemoryModel | None":
        return cls(**spec) if spec else None

    def item_bytes(self, units: int) -> float:
        """What one more item of length ``units`` adds to a pass."""
        return self.bytes_per_item + self.bytes_per_unit * units + self.bytes_per_unit_squared * units * units

    def pass_bytes(self, items: int, units: int) -> float:
        return self.fixed_bytes + items * self.item_bytes(units)

    def largest_units(self, budget: float, items: int = 1) -> int:
        """The longest item (in ``axis`` units) whose pass of ``items`` fits ``budget``; 0 when none does."""
        a, b = self.bytes_per_unit_squared, self.bytes_per_unit
        c = self.bytes_per_item - (budget - self.fixed_bytes) / items
        if c > 0:
            return 0
        if a == 0:
            return int(-c / b) if b else 2**62
        return int((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))
