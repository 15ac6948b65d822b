"""Settings of the distribution metrics beyond audioldm_eval's: FD covariance, KAD bandwidth, extrapolation."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .covariance import COVARIANCES
from .kad import BANDWIDTH_SOURCES
from ..validation import check_int, check_positive

INF_DRAWS = ("frames", "clips")


@dataclass(frozen=True)
class MetricOptions:
    """How FD/FAD, KAD and their extrapolations are computed; recorded in the report's provenance.

    covariance : ``mle`` (the originals' sample covariance), ``ledoit-wolf`` or ``oas`` (small sets).
    kad_bandwidth : ``reference`` (the paper's median heuristic), ``generated`` (kadtk's code) or a number.
    inf_draw : what the ``*_inf`` extrapolations draw with replacement: ``frames`` (rows, as fadtk) or ``clips``.
    inf_min, inf_steps : the smallest sample size and the number of sizes (fadtk: 500 and 25).
    seed : the random generator's seed for the draws and the KAD median subsample.
    """

    covariance: str = "mle"
    kad_bandwidth: str | float = "reference"
    inf_draw: str = "frames"
    inf_min: int = 500
    inf_steps: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {self.covariance!r}")
        if isinstance(self.kad_bandwidth, str):
            if self.kad_bandwidth not in BANDWIDTH_SOURCES:
                raise ValueError(f"kad_bandwidth must be one of {', '.join(BANDWIDTH_SOURCES)} or a positive number, "
                                 f"got {self.kad_bandwidth!r}")
        else:
            check_positive(self.kad_bandwidth, "kad_bandwidth")  # NaN, inf, 0 and negatives refused
        if self.inf_draw not in INF_DRAWS:
            raise ValueError(f"inf_draw must be one of {', '.join(INF_DRAWS)}, got {self.inf_draw!r}")
        check_int(self.inf_min, "inf_min", minimum=2)
        check_int(self.inf_steps, "inf_steps", minimum=2)
        check_int(self.seed, "seed", minimum=0)

    def as_dict(self) -> dict:
        return asdict(self)
