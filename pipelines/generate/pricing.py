"""Discount policy: ordinary reps stay within each product's floor, a few named reps go below it."""

from __future__ import annotations

import numpy as np

NO_DISCOUNT_SHARE = 0.55
BELOW_FLOOR_SHARE = 0.4  # share of a below-floor rep's lines discounted past the product's maximum


def discounts(rng: np.random.Generator, max_discount: np.ndarray, below_floor_rep: np.ndarray) -> np.ndarray:
    """Discount percent per line: 0 or up to the max, and past the max for below-floor reps' lines."""
    n = len(max_discount)
    within = np.floor(rng.random(n) * max_discount * 2) / 2
    disc = np.where(rng.random(n) < NO_DISCOUNT_SHARE, 0.0, within)
    beyond = np.minimum(max_discount + np.floor(rng.uniform(2, 15, n) * 2) / 2, 60.0)
    return np.where(below_floor_rep & (rng.random(n) < BELOW_FLOOR_SHARE), beyond, disc)
