"""The five bookings streams, as declarations (contract: bookings, seed 003).

All are incremental on ``modified`` through ``ModifiedAfter``; keys are UUIDs (``id``).
"""

from __future__ import annotations

from tap_bookings.client import BookingsStream


class AccountStream(BookingsStream):
    name = "account"
    path = "/v1/accounts"


class BookingStream(BookingsStream):
    name = "booking"
    path = "/v1/bookings"


class InvoiceStream(BookingsStream):
    name = "invoice"
    path = "/v1/invoices"


class ProductStream(BookingsStream):
    name = "product"
    path = "/v1/products"


class SubscriptionStream(BookingsStream):
    name = "subscription"
    path = "/v1/subscriptions"


STREAM_TYPES: list[type[BookingsStream]] = [
    AccountStream,
    BookingStream,
    InvoiceStream,
    ProductStream,
    SubscriptionStream,
]
