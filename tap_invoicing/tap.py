"""tap-invoicing: settings and streams."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_invoicing.streams import STREAM_TYPES
from taps_core.auth import BasicAuth
from taps_core.tap import COMMON_SETTINGS, CollectionTap


class TapInvoicing(CollectionTap):
    """Singer tap for the invoicing API (invoices, recurring invoices, products...)."""

    name = "tap-invoicing"
    stream_types = STREAM_TYPES
    config_jsonschema = th.PropertiesList(
        th.Property(
            "username",
            th.StringType,
            required=True,
            description="API user name, sent with the api_key as HTTP Basic credentials.",
        ),
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="API key, sent as the HTTP Basic password.",
        ),
        th.Property(
            "base_url",
            th.StringType,
            default="https://api.example.com",
            description="Base URL of the API (every stream POSTs to {base_url}/api.php).",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest invoice date for invoices and revenues, sent as their FILTER "
                "START_DATE (its date part); the other streams are read in full."
            ),
        ),
        *COMMON_SETTINGS,
    ).to_dict()

    def build_authenticator(self) -> BasicAuth:
        return BasicAuth(self.config["username"], self.config["api_key"])


if __name__ == "__main__":
    TapInvoicing.main()
