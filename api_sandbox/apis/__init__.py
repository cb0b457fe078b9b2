"""The fake APIs, one module each. ``API_CLASSES`` is what the sandbox serves.

Adding an API is one module with an ``Api`` subclass plus one entry here; the engine does
serving, faults, logging, ground truth and control endpoints for it.
"""

from __future__ import annotations

from api_sandbox.apis.bookings import BookingsApi
from api_sandbox.apis.inventory import InventoryApi
from api_sandbox.apis.invoicing import InvoicingApi
from api_sandbox.apis.reporting import ReportingApi
from api_sandbox.apis.rewards import RewardsApi
from api_sandbox.engine import Api

API_CLASSES: tuple[type[Api], ...] = (
    RewardsApi,
    InvoicingApi,
    BookingsApi,
    InventoryApi,
    ReportingApi,
)

__all__ = ["API_CLASSES"]
