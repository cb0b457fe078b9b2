"""The shared OAuth2 handling: one token a sync, a 401 gets one new token and one replay."""

from __future__ import annotations

import json
import typing as t

import pytest
from pytest_httpserver import HTTPServer
from singer_sdk import typing as th
from werkzeug import Request, Response

from taps_core.auth import OAuth2Auth
from taps_core.client import CollectionStream
from taps_core.errors import APIError
from taps_core.tap import COMMON_SETTINGS, CollectionTap
from tests.support import FAST_RETRIES, sync_in_process

SECRET = "client-secret-SENTINEL-42"


class ThingsStream(CollectionStream):
    name = "things"
    path = "/things"
    records_jsonpath = "$.things[*]"
    primary_keys = ("id",)
    schema: t.ClassVar[dict] = th.PropertiesList(th.Property("id", th.IntegerType)).to_dict()
    auth_hint = "Check client_id and client_secret."


class OtherThingsStream(ThingsStream):
    name = "other_things"


class TapOAuthExample(CollectionTap):
    name = "tap-oauth-example"
    stream_types: t.ClassVar = [ThingsStream, OtherThingsStream]
    config_jsonschema = th.PropertiesList(
        th.Property("client_id", th.StringType, required=True, secret=True),
        th.Property("client_secret", th.StringType, required=True, secret=True),
        th.Property("base_url", th.StringType, required=True),
        *COMMON_SETTINGS,
    ).to_dict()

    def build_authenticator(self) -> OAuth2Auth:
        return OAuth2Auth.client_credentials_grant(
            f"{self.config['base_url']}/oauth2/token",
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
        )


class FakeOAuthAPI:
    """Issues numbered tokens; refuses the tokens listed in ``revoked``."""

    def __init__(self) -> None:
        self.issued = 0
        self.revoked: set[str] = set()
        self.seen_tokens: list[str] = []

    def token(self, request: Request) -> Response:
        assert request.form["grant_type"] == "client_credentials"
        assert request.authorization and request.authorization.password == SECRET
        self.issued += 1
        body = {"access_token": f"tok-{self.issued}", "expires_in": 3600, "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")

    def data(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen_tokens.append(token)
        if token in self.revoked:
            return Response(
                '{"error":"invalid_token"}', status=401, content_type="application/json"
            )
        return Response(
            json.dumps({"things": [{"id": 1}, {"id": 2}]}), content_type="application/json"
        )


@pytest.fixture
def api(httpserver: HTTPServer) -> FakeOAuthAPI:
    fake = FakeOAuthAPI()
    httpserver.expect_request("/oauth2/token", method="POST").respond_with_handler(fake.token)
    httpserver.expect_request("/things").respond_with_handler(fake.data)
    return fake


def _config(httpserver: HTTPServer) -> dict:
    return {
        "client_id": "client-id-1234",
        "client_secret": SECRET,
        "base_url": httpserver.url_for("").rstrip("/"),
        **FAST_RETRIES,
    }


def test_one_token_serves_every_stream_of_a_sync(api, httpserver):
    result = sync_in_process(TapOAuthExample, _config(httpserver))
    assert len(result.records("things")) == 2 and len(result.records("other_things")) == 2
    assert api.issued == 1
    assert api.seen_tokens == ["tok-1", "tok-1"]


def test_a_401_fetches_one_new_token_and_replays_the_request(api, httpserver):
    tap = TapOAuthExample(config=_config(httpserver))
    tap.authenticator.access_token()  # tok-1, then the API revokes it
    api.revoked.add("tok-1")
    stream = tap.streams["things"]
    assert [r["id"] for r in stream.get_records(None)] == [1, 2]
    assert api.seen_tokens == ["tok-1", "tok-2"]
    assert api.issued == 2


def test_a_second_401_is_fatal(api, httpserver):
    tap = TapOAuthExample(config=_config(httpserver))
    api.revoked.update({"tok-1", "tok-2"})
    with pytest.raises(APIError, match=r"401 Unauthorized.*Check client_id and client_secret"):
        list(tap.streams["things"].get_records(None))
    assert api.issued == 2


def test_a_refused_token_request_names_the_token_url_and_hides_the_secret(httpserver, tmp_path):
    httpserver.expect_request("/oauth2/token").respond_with_data(
        '{"error":"invalid_client","error_description":"Client authentication failed"}',
        status=401,
        content_type="application/json",
    )
    tap = TapOAuthExample(config=_config(httpserver))
    with pytest.raises(APIError) as raised:
        tap.authenticator.access_token()
    message = str(raised.value)
    assert "POST /oauth2/token" in message and "401" in message
    assert "Client authentication failed" in message
    assert SECRET not in message


def test_grants_send_the_contract_form_fields(httpserver):
    seen: list[dict] = []

    def token(request: Request) -> Response:
        seen.append(dict(request.form))
        return Response(
            '{"access_token":"t-1234","expires_in":60}', content_type="application/json"
        )

    httpserver.expect_request("/token").respond_with_handler(token)
    url = httpserver.url_for("/token")
    OAuth2Auth.refresh_token_grant(
        url, client_id="cid1", client_secret="cs12", refresh_token="rt12"
    ).access_token()
    OAuth2Auth.password_grant(
        url, username="u", password="pw12", client_id="apiclient", scope="openid api profile"
    ).access_token()
    assert seen[0] == {
        "grant_type": "refresh_token",
        "refresh_token": "rt12",
        "client_id": "cid1",
        "client_secret": "cs12",
    }
    assert seen[1] == {
        "grant_type": "password",
        "username": "u",
        "password": "pw12",
        "client_id": "apiclient",
        "scope": "openid api profile",
    }


def test_a_token_near_expiry_is_renewed(httpserver):
    issued = []

    def token(request: Request) -> Response:
        issued.append(1)
        return Response(
            '{"access_token":"short-lived","expires_in":0}', content_type="application/json"
        )

    httpserver.expect_request("/token").respond_with_handler(token)
    auth = OAuth2Auth(httpserver.url_for("/token"), {"grant_type": "client_credentials"})
    auth.access_token()
    auth.access_token()
    assert len(issued) == 2
