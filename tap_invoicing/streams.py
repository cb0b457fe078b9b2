"""The five invoicing streams, as declarations (contract: invoicing, seed 002).

All are full-table: the API has no modified-since filter, so every sync reads every
list whole (``start_date`` only narrows invoices and revenues by invoice date).
"""

from __future__ import annotations

from tap_invoicing.client import InvoicingStream


class InvoicesStream(InvoicingStream):
    name = "invoices"
    service = "invoice.get"
    records_jsonpath = "$.RESPONSE.INVOICES[*]"
    primary_keys = ("INVOICE_ID",)
    takes_start_date = True


class RecurringInvoicesStream(InvoicingStream):
    name = "recurring_invoices"
    service = "recurring.get"
    records_jsonpath = "$.RESPONSE.INVOICES[*]"
    primary_keys = ("INVOICE_ID",)


class ProductsStream(InvoicingStream):
    name = "products"
    service = "article.get"
    records_jsonpath = "$.RESPONSE.ARTICLES[*]"
    primary_keys = ("ARTICLE_ID",)


class RevenuesStream(InvoicingStream):
    name = "revenues"
    service = "revenue.get"
    records_jsonpath = "$.RESPONSE.REVENUES[*]"
    primary_keys = ("INVOICE_ID",)
    takes_start_date = True


class CustomersStream(InvoicingStream):
    name = "customers"
    service = "customer.get"
    records_jsonpath = "$.RESPONSE.CUSTOMERS[*]"
    primary_keys = ("CUSTOMER_ID",)


STREAM_TYPES: list[type[InvoicingStream]] = [
    InvoicesStream,
    RecurringInvoicesStream,
    ProductsStream,
    RevenuesStream,
    CustomersStream,
]
