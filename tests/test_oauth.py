"""The shared OAuth2 handling: one token a sync, a 401 gets one new token and one replay."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from singer_sdk import typing as th
from werkzeug import Request, Response

from taps_core.auth import MIN_TOKEN_LIFETIME, OAuth2Auth
from taps_core.client import CollectionStream
from taps_core.errors import APIError
from taps_core.tap import COMMON_SETTINGS, CollectionTap
from tests.support import FAST_RETRIES, ROOT, CliResult, sync_in_process

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
    """Issues numbered tokens; refuses the tokens listed in ``revoked``.

    ``token_replies`` are answered, one each, before the numbered tokens, for the
    replies a token endpoint should not send; ``data_statuses`` likewise answer the
    first data requests with those statuses, whatever their token.
    """

    def __init__(self) -> None:
        self.issued = 0
        self.token_requests = 0
        self.expires_in: t.Any = 3600
        self.token_replies: list[Response] = []
        self.revoked: set[str] = set()
        self.seen_tokens: list[str] = []
        self.data_statuses: list[int] = []

    def token(self, request: Request) -> Response:
        assert request.form["grant_type"] == "client_credentials"
        assert request.authorization and request.authorization.password == SECRET
        self.token_requests += 1
        if self.token_replies:
            return self.token_replies.pop(0)
        self.issued += 1
        body = {
            "access_token": f"tok-{self.issued}",
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        return Response(json.dumps(body), content_type="application/json")

    def data(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen_tokens.append(token)
        if self.data_statuses:
            status = self.data_statuses.pop(0)
            return Response('{"error":"scripted"}', status=status, content_type="application/json")
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
    """One request at a time: the fake scripts its replies by order of arrival, which
    requests overlapped across the two streams would change (tokens shared by requests
    in flight: the last tests here, and tests/test_overlap.py)."""
    return {
        "client_id": "client-id-1234",
        "client_secret": SECRET,
        "base_url": httpserver.url_for("").rstrip("/"),
        **FAST_RETRIES,
        "max_concurrent_requests": 1,
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


def _token_server(httpserver: HTTPServer, expires_in: t.Any) -> list[int]:
    issued: list[int] = []

    def token(request: Request) -> Response:
        issued.append(1)
        body = {"access_token": f"tok-{len(issued)}", "expires_in": expires_in}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/token").respond_with_handler(token)
    return issued


def test_a_token_is_renewed_a_minute_before_it_expires(httpserver):
    issued = _token_server(httpserver, 600)
    now = [1000.0]
    auth = OAuth2Auth(
        httpserver.url_for("/token"), {"grant_type": "client_credentials"}, clock=lambda: now[0]
    )
    assert auth.access_token() == "tok-1"
    now[0] += 539
    assert auth.access_token() == "tok-1"
    now[0] += 2
    assert auth.access_token() == "tok-2"
    assert len(issued) == 2


@pytest.mark.parametrize("expires_in", [0, -5, 1, "0"])
def test_a_token_said_to_expire_at_once_is_used_for_the_floor_lifetime(httpserver, expires_in):
    issued = _token_server(httpserver, expires_in)
    now = [1000.0]
    auth = OAuth2Auth(
        httpserver.url_for("/token"), {"grant_type": "client_credentials"}, clock=lambda: now[0]
    )
    for _ in range(5):
        assert auth.access_token() == "tok-1"
    now[0] += MIN_TOKEN_LIFETIME
    assert auth.access_token() == "tok-2"
    assert len(issued) == 2


def test_a_sync_with_expires_in_zero_fetches_one_token(api, httpserver):
    api.expires_in = 0
    result = sync_in_process(TapOAuthExample, _config(httpserver))
    assert len(result.records("things")) == 2 and len(result.records("other_things")) == 2
    assert api.issued == 1
    assert api.seen_tokens == ["tok-1", "tok-1"]


# -- a second 401 across retries, and one new token per expiry ---------------------------


def _run_example(config: dict, tmp_path: Path) -> CliResult:
    """The example tap's CLI in a child process, as Meltano runs a tap."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    entry = "from tests.test_oauth import TapOAuthExample; TapOAuthExample.main()"
    proc = subprocess.run(
        [sys.executable, "-c", entry, "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _one_error_line(result: CliResult) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, errors
    assert SECRET not in result.stderr + result.stdout
    return errors[0]


def test_a_401_after_the_renewed_token_is_fatal_even_after_a_retry(api, httpserver, tmp_path):
    api.data_statuses = [401, 503, 401]
    line = _one_error_line(_run_example(_config(httpserver), tmp_path))
    assert "GET /things answered 401 Unauthorized to a renewed access token" in line
    assert "Check client_id and client_secret" in line
    assert api.issued == 2  # the first token and one renewal, never one an attempt
    assert api.seen_tokens == ["tok-1", "tok-2", "tok-2"]


def test_requests_refused_with_one_token_share_one_new_token():
    """Four requests in flight see their token refused; one new token serves them all.

    The fake answers the four 401s one at a time, each once the previous request's
    replay has arrived: by then that request has invalidated the token and fetched a
    new one, which a later ``invalidate`` must not throw away.
    """
    server = HTTPServer(threaded=True)
    server.start()
    try:
        overlapping = 4
        fake = FakeOAuthAPI()
        turn = threading.Condition()
        refused: list[int] = []
        replays: list[str] = []

        def data(request: Request) -> Response:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            with turn:
                if token != "tok-1":
                    replays.append(token)
                    turn.notify_all()
                    return fake.data(request)
                refused.append(1)
                mine = len(refused) - 1
                turn.notify_all()
                turn.wait_for(
                    lambda: len(refused) == overlapping and len(replays) >= mine, timeout=10
                )
            return Response('{"error":"invalid_token"}', status=401)

        server.expect_request("/oauth2/token", method="POST").respond_with_handler(fake.token)
        server.expect_request("/things").respond_with_handler(data)
        tap = TapOAuthExample(config=_config(server))
        assert tap.authenticator.access_token() == "tok-1"
        streams = [ThingsStream(tap=tap, name=f"things_{n}") for n in range(overlapping)]
        rows: dict[str, list[dict]] = {}

        def sync(stream: ThingsStream) -> None:
            rows[stream.name] = list(stream.get_records(None))

        threads = [threading.Thread(target=sync, args=(s,)) for s in streams]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        server.clear()
        server.stop()
    assert {name: len(r) for name, r in rows.items()} == {s.name: 2 for s in streams}
    assert fake.issued == 2
    assert replays == ["tok-2"] * overlapping


def test_invalidate_drops_only_the_token_that_was_refused(api, httpserver):
    tap = TapOAuthExample(config=_config(httpserver))
    auth = tap.authenticator
    assert auth.access_token() == "tok-1"
    auth.invalidate("tok-1")
    assert auth.access_token() == "tok-2"
    auth.invalidate("tok-1")  # a late 401 to the old token
    auth.invalidate(None)
    assert auth.access_token() == "tok-2"
    assert api.issued == 2


# -- token replies the core must survive -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "told"),
    [
        ({"access_token": None, "expires_in": 3600}, "answered 200 OK without an access_token."),
        ({"expires_in": 3600}, "answered 200 OK without an access_token."),
        ({"access_token": ""}, "answered 200 OK without an access_token."),
        ({"access_token": 12345}, "answered 200 OK without an access_token."),
        (["tok-1"], "answered 200 OK without an access_token."),
        ({"access_token": "tok 1\n2"}, "answered 200 OK with an unusable access_token."),
        (
            {"access_token": "tok-1", "expires_in": "soon"},
            "answered 200 OK with expires_in 'soon', which is not a number of seconds.",
        ),
        (
            {"access_token": "tok-1", "expires_in": True},
            "answered 200 OK with expires_in True, which is not a number of seconds.",
        ),
        (
            {"access_token": "tok-1", "expires_in": "NaN"},
            "answered 200 OK with expires_in 'NaN', which is not a number of seconds.",
        ),
    ],
    ids=["null", "missing", "empty", "number", "list", "space", "soon", "bool", "nan"],
)
def test_an_unusable_token_reply_is_a_clear_error(api, httpserver, body, told):
    api.token_replies = [Response(json.dumps(body), content_type="application/json")]
    with pytest.raises(APIError) as raised:
        sync_in_process(TapOAuthExample, _config(httpserver))
    assert str(raised.value) == f"Token request POST /oauth2/token {told}"
    assert api.seen_tokens == []


@pytest.mark.parametrize(
    "body", [{"access_token": None}, {"access_token": "tok-1", "expires_in": "soon"}]
)
def test_an_unusable_token_reply_ends_the_cli_in_one_line(api, httpserver, tmp_path, body):
    api.token_replies = [Response(json.dumps(body), content_type="application/json")]
    line = _one_error_line(_run_example(_config(httpserver), tmp_path))
    assert "Token request POST /oauth2/token answered 200 OK with" in line


def test_a_cut_off_token_reply_is_retried(api, httpserver, caplog):
    cut = Response('{"access_token": "tok-cut-SENTINEL", "expi', content_type="application/json")
    api.token_replies = [cut]
    result = sync_in_process(TapOAuthExample, _config(httpserver))
    assert len(result.records("things")) == 2
    assert api.token_requests == 2 and api.seen_tokens == ["tok-1", "tok-1"]
    assert (
        "token request POST /oauth2/token failed (200 OK with a body that is not valid JSON); "
        "retry 1 of 3" in caplog.text
    )


def test_a_token_reply_cut_off_every_time_fails_without_quoting_it(api, httpserver, tmp_path):
    cut = '{"access_token": "tok-cut-SENTINEL", "expi'
    api.token_replies = [Response(cut, content_type="application/json") for _ in range(4)]
    line = _one_error_line(_run_example(_config(httpserver), tmp_path))
    assert (
        "Token request POST /oauth2/token answered 200 OK with a body that is not valid JSON "
        "after 4 attempts." in line
    )
    assert "tok-cut-SENTINEL" not in line
    assert api.token_requests == 4


def test_the_token_request_takes_the_taps_retry_settings(api, httpserver, caplog):
    api.token_replies = [
        Response("busy", status=503, headers={"Retry-After": "3"}),
        Response("busy", status=503),
    ]
    config = {**_config(httpserver), "max_retry_wait_seconds": 0.2, "backoff_factor": 0.01}
    result = sync_in_process(TapOAuthExample, config)
    assert len(result.records("things")) == 2
    retries = [r.getMessage() for r in caplog.records if "token request" in r.getMessage()]
    assert retries == [
        "token request POST /oauth2/token failed (503 Service Unavailable); retry 1 of 3 in 0.2 s",
        "token request POST /oauth2/token failed (503 Service Unavailable); retry 2 of 3 in 0.0 s",
    ]


def test_the_token_request_takes_the_taps_request_timeout(api, httpserver, caplog):
    def slow_first_token(request: Request) -> Response:
        if api.token_requests == 0:
            time.sleep(1.6)
        return api.token(request)

    httpserver.clear()
    httpserver.expect_request("/oauth2/token").respond_with_handler(slow_first_token)
    httpserver.expect_request("/things").respond_with_handler(api.data)
    result = sync_in_process(TapOAuthExample, {**_config(httpserver), "request_timeout": 1})
    assert len(result.records("things")) == 2
    assert "token request POST /oauth2/token failed (timed out); retry 1 of 3" in caplog.text
