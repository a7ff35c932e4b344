"""Turn what callers hand the CLV models (a polars frame or a numpy array) into checked float arrays.

The models are defined on one summary row per customer: `frequency` (number of repeat purchases, x),
`recency` (time of the last repeat purchase since the first purchase, t_x), `T` (time since the first
purchase, the customer's age) and, for spend, `monetary_value` (mean value of the repeat purchases, m_x).
All three times are in one unit chosen by the caller (days or weeks). Bad rows are refused with a message
that names the row and the field, because a silently clipped row would bias every fitted parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

RFM_COLUMNS = ("frequency", "recency", "T")
SPEND_COLUMNS = ("frequency", "monetary_value")


def as_columns(data: pl.DataFrame | np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
    """Return the named columns of `data` as float64 arrays.

    A polars frame is read by column name; a 2-D numpy array is read by position in the order of `names`.
    """
    if isinstance(data, pl.DataFrame):
        missing = [name for name in names if name not in data.columns]
        if missing:
            raise ValueError(
                f"The customer summary has no column {', '.join(missing)}; it needs {', '.join(names)}."
            )
        columns = [data.get_column(name).cast(pl.Float64).to_numpy() for name in names]
    else:
        array = np.asarray(data, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] < len(names):
            raise ValueError(
                f"Expected an array of shape (customers, {len(names)}) with columns {', '.join(names)}, "
                f"got shape {array.shape}."
            )
        columns = [array[:, position] for position in range(len(names))]
    for name, column in zip(names, columns, strict=True):
        bad = np.flatnonzero(~np.isfinite(column))
        if bad.size:
            raise ValueError(f"Row {bad[0]}: field {name} is missing or not a number; fill or drop that row.")
    return columns


def rfm_arrays(data: pl.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequency, recency and age, checked for the relations the BG/NBD model assumes."""
    frequency, recency, age = as_columns(data, RFM_COLUMNS)
    _refuse_first(frequency < 0, "frequency", "is negative; it counts repeat purchases and must be >= 0")
    _refuse_first(frequency != np.round(frequency), "frequency", "is not a whole number of purchases")
    _refuse_first(recency < 0, "recency", "is negative; it is the time of the last repeat purchase")
    _refuse_first(recency > age, "recency", "is larger than T; the last purchase cannot be after the end")
    _refuse_first(
        (frequency == 0) & (recency != 0), "recency", "must be 0 for a customer without repeat purchases"
    )
    return frequency, recency, age


def spend_arrays(data: pl.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequency and mean repeat-purchase value, checked for what the Gamma-Gamma model assumes."""
    frequency, monetary = as_columns(data, SPEND_COLUMNS)
    _refuse_first(frequency < 0, "frequency", "is negative; it counts repeat purchases and must be >= 0")
    _refuse_first(
        (frequency > 0) & (monetary <= 0),
        "monetary_value",
        "must be positive for a customer with repeat purchases (the Gamma-Gamma model has no zero spend)",
    )
    return frequency, monetary


def _refuse_first(mask: np.ndarray, field: str, problem: str) -> None:
    rows = np.flatnonzero(mask)
    if rows.size:
        raise ValueError(f"Row {rows[0]}: field {field} {problem} ({rows.size} rows affected).")
