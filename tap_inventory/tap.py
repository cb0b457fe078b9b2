"""tap-inventory: settings and streams."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_inventory.streams import STREAM_TYPES
from taps_core.auth import OAuth2Auth
from taps_core.tap import COMMON_SETTINGS, CollectionTap, request_budget_setting


class TapInventory(CollectionTap):
    """Singer tap for the inventory API (items, contacts, orders, invoices...)."""

    name = "tap-inventory"
    stream_types = STREAM_TYPES
    config_jsonschema = th.PropertiesList(
        th.Property(
            "client_id",
            th.StringType,
            required=True,
            secret=True,
            description="OAuth client id, sent with the refresh-token grant.",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            required=True,
            secret=True,
            description="OAuth client secret, sent with the refresh-token grant.",
        ),
        th.Property(
            "refresh_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "OAuth refresh token; the tap trades it for one access token a sync "
                "(a new one only on expiry or a 401)."
            ),
        ),
        th.Property(
            "token_url",
            th.StringType,
            default="https://accounts.example.com/oauth/v2/token",
            description="The OAuth token endpoint (the grant is POSTed there as a form).",
        ),
        th.Property(
            "base_url",
            th.StringType,
            default="https://api.example.com/inventory/v1",
            description="Base URL of the API.",
        ),
        th.Property(
            "organization_id",
            th.StringType,
            description=(
                "Organization to read, sent as the organization_id query parameter on every "
                "request but /organizations; unset, the API's default organization."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest last_modified_time for items (the incremental stream) on a first "
                "sync; the other streams are read in full."
            ),
        ),
        *COMMON_SETTINGS,
        request_budget_setting(100),  # the contract's rate limit
    ).to_dict()

    def build_authenticator(self) -> OAuth2Auth:
        """The refresh-token grant; the core gives it the tap's retries and timeout."""
        return OAuth2Auth.refresh_token_grant(
            self.config["token_url"],
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            refresh_token=self.config["refresh_token"],
        )


if __name__ == "__main__":
    TapInventory.main()
