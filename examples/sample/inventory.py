"""A small stock-keeping module used by `slm-lsp demo` as the file being edited."""

from __future__ import annotations

from dataclasses import dataclass, field

from pricing import apply_discount, unit_price


@dataclass
class Item:
    """One product line in the warehouse."""

    sku: str
    name: str
    quantity: int = 0
    tags: set[str] = field(default_factory=set)


class Inventory:
    """Items by SKU, with the operations a shop needs every day."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}

    def add(self, sku: str, name: str, quantity: int = 0) -> Item:
        """Add stock, creating the item on first sight."""
        item = self.items.get(sku)
        if item is None:
            item = Item(sku, name)
            self.items[sku] = item
        item.quantity += quantity
        return item

    def remove(self, sku: str, quantity: int) -> None:
        """Take stock out; refuse to go below zero."""
        item = self.items[sku]
        if quantity > item.quantity:
            raise ValueError(f"only {item.quantity} of {sku} left")
        item.quantity -= quantity

    def low_stock(self, threshold: int = 5) -> list[Item]:
        """Items that should be re-ordered soon, fewest first."""
        low = [item for item in self.items.values() if item.quantity < threshold]
        return sorted(low, key=lambda item: item.quantity)

    def total_value(self, customer_rate: float = 0.0) -> float:
        """What the stock is worth at list price, after a customer discount."""
        total = 0.0
        for item in self.items.values():
            total += unit_price(item.sku) * item.quantity
        return apply_discount(total, customer_rate)

    def tagged(self, tag: str) -> list[Item]:
        """Items carrying a tag, in SKU order."""
        return [self.items[sku] for sku in sorted(self.items) if tag in self.items[sku].tags]
