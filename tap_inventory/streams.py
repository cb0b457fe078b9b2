"""The thirteen inventory streams, as declarations (contract: inventory, seed 000)."""

from __future__ import annotations

import typing as t

from tap_inventory.client import InventoryStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class ItemsStream(InventoryStream):
    """Incremental: the API filters on ``last_modified_time`` (modified at or after).

    The list is not ordered by that field, so the bookmark is the largest value seen,
    kept only once the stream has been read to its end.
    """

    name = "items"
    path = "/items"
    records_jsonpath = "$.items[*]"
    primary_keys = ("item_id",)
    replication_key = "last_modified_time"
    is_sorted = False

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params = super().get_url_params(context, next_page_token)
        start = self.get_starting_timestamp(context)
        if start is not None:
            params["last_modified_time"] = start.strftime("%Y-%m-%dT%H:%M:%S%z")
        return params


class ItemGroupsStream(InventoryStream):
    name = "item_groups"
    path = "/itemgroups"
    records_jsonpath = "$.itemgroups[*]"
    primary_keys = ("group_id",)


class OrganizationsStream(InventoryStream):
    name = "organizations"
    path = "/organizations"
    records_jsonpath = "$.organizations[*]"
    primary_keys = ("organization_id",)
    scoped_to_organization = False


class ContactsStream(InventoryStream):
    name = "contacts"
    path = "/contacts"
    records_jsonpath = "$.contacts[*]"
    primary_keys = ("contact_id",)


class ItemAdjustmentsStream(InventoryStream):
    name = "item_adjustments"
    path = "/inventoryadjustments"
    records_jsonpath = "$.inventory_adjustments[*]"
    primary_keys = ("inventory_adjustment_id",)


class WarehousesStream(InventoryStream):
    """One reply holds every warehouse; the API refuses ``page`` here."""

    name = "warehouses"
    path = "/settings/warehouses"
    records_jsonpath = "$.warehouses[*]"
    primary_keys = ("warehouse_id",)
    page_size = None


class TransferOrdersStream(InventoryStream):
    name = "transfer_orders"
    path = "/transferorders"
    records_jsonpath = "$.transfer_orders[*]"
    primary_keys = ("transfer_order_id",)


class SalesOrdersStream(InventoryStream):
    name = "sales_orders"
    path = "/salesorders"
    records_jsonpath = "$.salesorders[*]"
    primary_keys = ("salesorder_id",)


class PackagesStream(InventoryStream):
    name = "packages"
    path = "/packages"
    records_jsonpath = "$.packages[*]"
    primary_keys = ("package_id",)


class InvoicesStream(InventoryStream):
    name = "invoices"
    path = "/invoices"
    records_jsonpath = "$.invoices[*]"
    primary_keys = ("invoice_id",)


class PurchaseOrdersStream(InventoryStream):
    name = "purchase_orders"
    path = "/purchaseorders"
    records_jsonpath = "$.purchaseorders[*]"
    primary_keys = ("purchaseorder_id",)


class CreditNotesStream(InventoryStream):
    name = "credit_notes"
    path = "/creditnotes"
    records_jsonpath = "$.creditnotes[*]"
    primary_keys = ("creditnote_id",)


class UsersStream(InventoryStream):
    name = "users"
    path = "/users"
    records_jsonpath = "$.users[*]"
    primary_keys = ("user_id",)


STREAM_TYPES: list[type[InventoryStream]] = [
    ItemsStream,
    ItemGroupsStream,
    OrganizationsStream,
    ContactsStream,
    ItemAdjustmentsStream,
    WarehousesStream,
    TransferOrdersStream,
    SalesOrdersStream,
    PackagesStream,
    InvoicesStream,
    PurchaseOrdersStream,
    CreditNotesStream,
    UsersStream,
]
