"""The root of the product's errors, for `alerts`: `subscriptions.errors` holds it (and draws
the tree), since `subscriptions` must not import `alerts`."""

from __future__ import annotations

from subscriptions.errors import AlertsError

__all__ = ["AlertsError"]
