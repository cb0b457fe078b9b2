"""tap-bookings: settings and streams."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_bookings.streams import STREAM_TYPES
from taps_core.auth import OAuth2Auth
from taps_core.retry import RetryPolicy
from taps_core.tap import COMMON_SETTINGS, CollectionTap


class TapBookings(CollectionTap):
    """Singer tap for the bookings API (accounts, bookings, invoices, products...)."""

    name = "tap-bookings"
    stream_types = STREAM_TYPES
    config_jsonschema = th.PropertiesList(
        th.Property(
            "username",
            th.StringType,
            required=True,
            description="API user name, for the OAuth2 password grant.",
        ),
        th.Property(
            "password",
            th.StringType,
            required=True,
            secret=True,
            description="The user's password, for the OAuth2 password grant.",
        ),
        th.Property(
            "legal_entity",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "The legal entity to read, sent as the `legal-entity` header on every "
                "data request (the API answers 403 to a missing or unknown one)."
            ),
        ),
        th.Property(
            "client_id",
            th.StringType,
            default="apiclient",
            secret=True,
            description="OAuth2 client id sent with the password grant.",
        ),
        th.Property(
            "scope",
            th.StringType,
            default="openid api profile",
            description="OAuth2 scopes asked for, separated by spaces.",
        ),
        th.Property(
            "token_url",
            th.StringType,
            description="Where the token is fetched; unset, {base_url}/connect/token.",
        ),
        th.Property(
            "base_url",
            th.StringType,
            default="https://api.example.com",
            description="Base URL of the API (paths begin /v1/).",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest `modified` to sync on a stream's first run (sent as "
                "ModifiedAfter); later runs start from the stream's bookmark."
            ),
        ),
        *COMMON_SETTINGS,
    ).to_dict()

    def build_authenticator(self) -> OAuth2Auth:
        config = self.config
        base_url = str(config["base_url"]).rstrip("/")
        return OAuth2Auth.password_grant(
            config.get("token_url") or f"{base_url}/connect/token",
            username=config["username"],
            password=config["password"],
            client_id=config.get("client_id") or "apiclient",
            scope=config.get("scope") or None,
            policy=RetryPolicy(
                backoff_factor=float(config.get("backoff_factor", 2.0)),
                max_wait_seconds=float(config.get("max_retry_wait_seconds", 60.0)),
            ),
            logger=self.logger,
            timeout=float(config.get("request_timeout", 300)),
        )


if __name__ == "__main__":
    TapBookings.main()
