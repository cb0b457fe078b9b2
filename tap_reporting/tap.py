"""tap-reporting: settings and streams."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_reporting.streams import STREAM_TYPES
from taps_core.auth import OAuth2Auth
from taps_core.tap import COMMON_SETTINGS, CollectionTap

#: The API refuses a transactions window longer than this.
MAX_WINDOW_DAYS = 31


class TapReporting(CollectionTap):
    """Singer tap for the reporting API (transactions, balances, products, disputes...)."""

    name = "tap-reporting"
    stream_types = STREAM_TYPES
    config_jsonschema = th.PropertiesList(
        th.Property(
            "client_id",
            th.StringType,
            required=True,
            secret=True,
            description="OAuth2 client id, sent with the client_secret as HTTP Basic.",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            required=True,
            secret=True,
            description="OAuth2 client secret.",
        ),
        th.Property(
            "base_url",
            th.StringType,
            default="https://api.example.com",
            description="Base URL of the API.",
        ),
        th.Property(
            "token_url",
            th.StringType,
            description="OAuth2 token endpoint; default {base_url}/v1/oauth2/token.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest transaction_updated_date of transactions (default: 30 days back) "
                "and update_time of list_disputes (default: all disputes)."
            ),
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description=(
                "Where the transactions windows end (exclusive, default: when the sync "
                "starts); with start_date it bounds a run to one period, as a backfill does."
            ),
        ),
        th.Property(
            "window_days",
            th.IntegerType(minimum=1, maximum=MAX_WINDOW_DAYS),
            default=7,
            description=(
                "Length of the date windows transactions are read in, in days (at most 31, "
                "the API's limit); a window the API finds too large is split further."
            ),
        ),
        *COMMON_SETTINGS,
    ).to_dict()

    def build_authenticator(self) -> OAuth2Auth:
        """The client-credentials grant; the core gives it the tap's retries and timeout."""
        config = self.config
        base = str(config["base_url"]).rstrip("/")
        return OAuth2Auth.client_credentials_grant(
            config.get("token_url") or f"{base}/v1/oauth2/token",
            client_id=config["client_id"],
            client_secret=config["client_secret"],
        )


if __name__ == "__main__":
    TapReporting.main()
