"""tap-rewards: settings and streams."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_rewards.streams import STREAM_TYPES
from taps_core.auth import BearerAuth
from taps_core.tap import COMMON_SETTINGS, CollectionTap, request_budget_setting


class TapRewards(CollectionTap):
    """Singer tap for the rewards API (orders, rewards, invoices, members...)."""

    name = "tap-rewards"
    stream_types = STREAM_TYPES
    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="API key, sent as `Authorization: Bearer <api_key>`.",
        ),
        th.Property(
            "base_url",
            th.StringType,
            default="https://api.example.com",
            description="Base URL of the API (paths begin /v2/).",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest created_at to sync for orders and balance_transactions "
                "(the incremental streams); the other streams are read in full."
            ),
        ),
        *COMMON_SETTINGS,
        request_budget_setting(600),  # the contract's rate limit
    ).to_dict()

    def build_authenticator(self) -> BearerAuth:
        return BearerAuth(self.config["api_key"])


if __name__ == "__main__":
    TapRewards.main()
