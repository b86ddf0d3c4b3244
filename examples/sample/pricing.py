"""Prices and discounts for the sample shop (retrieval context for the demo)."""

from __future__ import annotations

PRICE_LIST: dict[str, float] = {"A-100": 2.50, "B-200": 12.00, "C-300": 0.75}


def unit_price(sku: str) -> float:
    """The list price of one unit; unknown SKUs cost nothing."""
    return PRICE_LIST.get(sku, 0.0)


def apply_discount(amount: float, rate: float) -> float:
    """Reduce ``amount`` by ``rate`` (0.1 is ten percent), never below zero."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be between 0 and 1")
    return max(0.0, amount * (1.0 - rate))
