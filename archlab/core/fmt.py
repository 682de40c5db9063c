"""Human-readable numbers shared by the CLI tables, space descriptions and reports."""
from __future__ import annotations

import math

__all__ = ["format_count"]

_UNITS = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3))


def format_count(n: float | None, *, decimals: int | None = None) -> str:
    """A parameter or MAC count with an SI suffix: 1234567 -> '1.23M' (3 significant digits, or `decimals` fixed).

    None, NaN and infinity read '-' (a missing measurement, never a number).
    """
    if n is None or not math.isfinite(n):
        return "-"
    for unit, div in _UNITS:
        if abs(n) >= div:
            return f"{n / div:.{decimals}f}{unit}" if decimals is not None else f"{n / div:.3g}{unit}"
    return str(int(n)) if decimals is not None or float(n).is_integer() else f"{n:.3g}"
