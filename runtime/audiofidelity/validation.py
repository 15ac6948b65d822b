"""One check per numeric setting, shared by the Python API, the command line and the HTTP service.

Each ``check_*`` returns the value (an ``int`` or a finite ``float``) or raises ``ValueError`` saying what was
received and what is allowed, named as the caller calls it (``limit``, ``--limit``, ``limit_num``). The
dataclasses and constructors (``Conditioning``, ``MetricOptions``, ``Evaluator``, ``Embedder``) call them; the
command line's ``arg_type`` turns the same check into an argparse ``type=`` (so a bad value exits 2 with the
same words), and the service calls them on its form fields. NaN and infinity are refused everywhere a number
is taken: no setting means anything at either.
"""
from __future__ import annotations

import argparse
import math
import numbers
from typing import Callable, TypeVar

T = TypeVar("T")


def check_int(value: object, name: str, *, minimum: int) -> int:
    """``value`` as an int, refused unless it is a whole number (not a bool) ``>= minimum``.

    Raises
    ------
    ValueError
        ``"<name> must be >= <minimum>, got <value>"`` (or ``must be an integer``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_number(value: object, name: str, *, minimum: float = 0.0, inclusive: bool = True,
                 maximum: float = math.inf) -> float:
    """``value`` as a finite float ``>= minimum`` (``> minimum`` unless ``inclusive``) and ``<= maximum``; NaN and
    inf are refused (``minimum=-math.inf``: no lower bound).

    Raises
    ------
    ValueError
        ``"<name> must be a finite number >= <minimum>, got <value>"`` (``> <minimum>`` when not inclusive;
        ``<= <maximum>`` added when there is one).
    """
    rule = "".join(([f" {'>=' if inclusive else '>'} {minimum:g}"] if minimum > -math.inf else [])
                   + ([f"{' and' if minimum > -math.inf else ''} <= {maximum:g}"] if maximum < math.inf else []))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number{rule}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (not inclusive and number == minimum) or number > maximum:
        raise ValueError(f"{name} must be a finite number{rule}, got {value}")
    return number


def check_positive(value: object, name: str) -> float:
    """A finite number > 0 (a bandwidth, a window length, a timeout)."""
    return check_number(value, name, minimum=0.0, inclusive=False)


def check_optional(check: Callable[..., T], value: object, name: str, **rule) -> T | None:
    """``check(value, name, **rule)``, or None when ``value`` is None (the setting's default)."""
    return None if value is None else check(value, name, **rule)


def arg_type(check: Callable[..., T], option: str, convert: Callable[[str], object] = float, **rule
             ) -> Callable[[str], T]:
    """An argparse ``type=`` that converts the text with ``convert`` and applies ``check`` (named ``option``);
    a bad value is an argparse error (exit 2) with the check's message."""
    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"{option} must be {kind}, got {text!r}") from None
        try:
            return check(value, option, **rule)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.lstrip("-").replace("-", "_")  # argparse names the type in its messages
    return parse


LIMIT = arg_type(check_int, "--limit", int, minimum=1)
MIN_DURATION = arg_type(check_number, "--min-duration", minimum=0.0)
"""Option types of more than one command (``eval``, ``stats``, ``embed``): the checks of ``list_folder`` and
``Conditioning``."""

__all__ = ["check_int", "check_number", "check_positive", "check_optional", "arg_type"]
