"""Authenticators shared by the taps: Bearer keys, HTTP Basic and OAuth2 grants.

They are ``requests`` auth objects, so the SDK applies them to every prepared
request. OAuth2 tokens are scarce on some of these APIs (inventory allows about ten
per ten minutes), so one token serves the whole sync, every stream of it, until it
expires; a 401 on a data request invalidates it and the stream replays that one
request with a fresh token (see :mod:`taps_core.client`).
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
import requests
from requests.auth import AuthBase, HTTPBasicAuth

from taps_core.errors import (
    APIError,
    RetryableResponseError,
    api_error_text,
    request_label,
    status_text,
)
from taps_core.redact import register_secret
from taps_core.retry import RetryPolicy, call_with_retries

#: Renew this long before the server's expiry, so a token never dies mid-request.
EXPIRY_MARGIN_SECONDS = 60.0
DEFAULT_TOKEN_LIFETIME = 3600.0


class BearerAuth(AuthBase):
    """``Authorization: Bearer <key>`` with a static key."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request


class BasicAuth(HTTPBasicAuth):
    """HTTP Basic whose password never reaches a log line."""

    def __init__(self, username: str, password: str) -> None:
        register_secret(password)
        super().__init__(username, password)


class OAuth2Auth(AuthBase):
    """An OAuth2 access token, fetched once and reused until it expires.

    Build it with one of the grant constructors; each tap only says which grant
    and which settings feed it.
    """

    def __init__(
        self,
        token_url: str,
        form: dict[str, str],
        *,
        client_auth: tuple[str, str] | None = None,
        policy: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        timeout: float = 60.0,
    ) -> None:
        for key in ("client_secret", "refresh_token", "password", "client_id"):
            register_secret(form.get(key))
        if client_auth:
            register_secret(client_auth[0])
            register_secret(client_auth[1])
        self.token_url = token_url
        self._form = form
        self._client_auth = client_auth
        self._policy = policy or RetryPolicy()
        self._logger = logger or logging.getLogger(__name__)
        self._timeout = timeout
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        #: How many tokens this sync has fetched: tests and logs use it.
        self.tokens_fetched = 0

    @classmethod
    def refresh_token_grant(
        cls, token_url: str, *, client_id: str, client_secret: str, refresh_token: str, **kw
    ) -> OAuth2Auth:
        """Form body ``grant_type=refresh_token&refresh_token&client_id&client_secret``."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        return cls(token_url, form, **kw)

    @classmethod
    def client_credentials_grant(
        cls, token_url: str, *, client_id: str, client_secret: str, **kw
    ) -> OAuth2Auth:
        """HTTP Basic ``client_id:client_secret`` and ``grant_type=client_credentials``."""
        return cls(
            token_url,
            {"grant_type": "client_credentials"},
            client_auth=(client_id, client_secret),
            **kw,
        )

    @classmethod
    def password_grant(
        cls,
        token_url: str,
        *,
        username: str,
        password: str,
        client_id: str,
        scope: str | None = None,
        **kw,
    ) -> OAuth2Auth:
        """Form body ``grant_type=password&username&password&client_id[&scope]``."""
        form = {
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": client_id,
        }
        if scope:
            form["scope"] = scope
        return cls(token_url, form, **kw)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        """The current token, fetching a new one only when there is none or it expired."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the token (the API answered 401 to it), so the next call fetches one."""
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        label = request_label("POST", self.token_url)

        def attempt() -> requests.Response:
            response = self._session.post(
                self.token_url,
                data=self._form,
                auth=self._client_auth,
                timeout=self._timeout,
            )
            if response.status_code in self._policy.statuses:
                raise RetryableResponseError(response, status_text(response.status_code))
            return response

        try:
            response = call_with_retries(
                attempt, self._policy, logger=self._logger, what=f"token request {label}"
            )
        except RetryableResponseError as error:
            raise self._failure(error.response) from None
        except requests.exceptions.RequestException as error:
            msg = f"Token request {label} failed: {type(error).__name__} after retries."
            raise APIError(msg) from None
        if response.status_code >= 300:
            raise self._failure(response)
        try:
            payload = orjson.loads(response.content)
            token = payload["access_token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            msg = f"Token request {label} answered {response.status_code} without an access_token."
            raise APIError(msg, status=response.status_code) from None
        register_secret(token)
        expires_in = payload.get("expires_in")
        lifetime = float(DEFAULT_TOKEN_LIFETIME if expires_in is None else expires_in)
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        self._token = token
        self._expires_at = time.monotonic() + lifetime - margin
        self.tokens_fetched += 1
        self._logger.info("Fetched an OAuth2 access token, valid for %.0f s", lifetime)

    def _failure(self, response: requests.Response) -> APIError:
        text = api_error_text(response.content)
        hint = (
            " Check the OAuth credentials in the tap's settings."
            if response.status_code in (400, 401, 403)
            else ""
        )
        msg = (
            f"Token request {request_label('POST', self.token_url)} answered "
            f"{status_text(response.status_code)}{': ' + text if text else ''}.{hint}"
        )
        return APIError(msg, status=response.status_code)
