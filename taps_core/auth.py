"""Authenticators shared by the taps: Bearer keys, HTTP Basic and OAuth2 grants.

They are ``requests`` auth objects, so the SDK applies them to every prepared
request. OAuth2 tokens are scarce on some of these APIs (inventory allows about ten
per ten minutes), so one token serves the whole sync, every stream of it, until it
expires; a 401 on a data request invalidates it and the stream replays that one
request with a fresh token (see :mod:`taps_core.client`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import typing as t

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
from taps_core.retry import RetryPolicy, call_with_retries, describe_transient

#: Renew this long before the server's expiry, so a token never dies mid-request.
EXPIRY_MARGIN_SECONDS = 60.0
DEFAULT_TOKEN_LIFETIME = 3600.0
#: A lifetime the server gives below this is read as this. ``expires_in: 0`` (or a
#: few seconds) would otherwise cost a token a request on APIs that ration tokens;
#: should the API refuse the token sooner, the 401 replay renews it.
MIN_TOKEN_LIFETIME = 60.0
#: Token requests made outside a tap (which passes its ``request_timeout``).
DEFAULT_TIMEOUT = 60.0
#: What a bearer token may contain: visible ASCII (wider than RFC 6750's b64token,
#: since some APIs put ``!`` or ``|`` in theirs). A space or control character would
#: break the header, and requests would quote the token in its error.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_NOT_JSON = "not valid JSON"


def bearer_token(request: requests.PreparedRequest) -> str | None:
    """The token ``request`` was sent with (``Authorization: Bearer <token>``), or None."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return token if scheme == "Bearer" and token else None


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
    and which settings feed it. The tap hands it its retry settings and
    ``request_timeout`` (:meth:`use_tap_settings`), so a token request is retried
    and timed out like every other request of the sync.

    Thread-safe: requests of several threads share the token, and one expiry costs
    one new token however many of them saw it refused (:meth:`invalidate`).
    """

    def __init__(
        self,
        token_url: str,
        form: dict[str, str],
        *,
        client_auth: tuple[str, str] | None = None,
        policy: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        timeout: float | None = None,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        for key in ("client_secret", "refresh_token", "password", "client_id"):
            register_secret(form.get(key))
        if client_auth:
            register_secret(client_auth[0])
            register_secret(client_auth[1])
        self.token_url = token_url
        self._form = form
        self._client_auth = client_auth
        self._policy = policy
        self._logger = logger
        self._timeout = timeout
        self._clock = clock
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        #: How many tokens this sync has fetched: tests and logs use it.
        self.tokens_fetched = 0

    def use_tap_settings(
        self, *, policy: RetryPolicy, timeout: float, logger: logging.Logger
    ) -> None:
        """Take the tap's retry policy, timeout and logger where none was given here.

        :class:`taps_core.tap.CollectionTap` calls this on the authenticator it
        builds, so no tap has to remember to pass them to a grant constructor.
        """
        with self._lock:
            self._policy = self._policy or policy
            self._timeout = self._timeout or timeout
            self._logger = self._logger or logger

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
            if self._token is None or self._clock() >= self._expires_at:
                self._token, self._expires_at = self._fetch()
                self.tokens_fetched += 1
            return self._token

    def invalidate(self, refused: str | None) -> None:
        """Forget ``refused``, the token a 401 answered, unless it was already replaced.

        Requests in flight with one token all see it refused; the first to get here
        drops it, the others find a renewed token (or none yet) and leave it alone,
        so one expiry costs one new token. ``refused`` None (no token was sent)
        drops nothing.
        """
        with self._lock:
            if refused is not None and refused == self._token:
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        """A new token and the monotonic time to renew it at; raises a clear APIError."""
        label = request_label("POST", self.token_url)
        policy = self._policy or RetryPolicy()
        logger = self._logger or logging.getLogger(__name__)

        def attempt() -> tuple[requests.Response, t.Any]:
            response = self._session.post(
                self.token_url,
                data=self._form,
                auth=self._client_auth,
                timeout=self._timeout or DEFAULT_TIMEOUT,
            )
            if response.status_code in policy.statuses:
                raise RetryableResponseError(response, status_text(response.status_code))
            if response.status_code >= 300:
                return response, None
            try:
                return response, orjson.loads(response.content)
            except orjson.JSONDecodeError:
                # A cut-off reply (a proxy, a dropped connection): the next one may be whole.
                summary = f"{status_text(response.status_code)} with a body that is {_NOT_JSON}"
                raise RetryableResponseError(response, summary) from None

        try:
            response, payload = call_with_retries(
                attempt, policy, logger=logger, what=f"token request {label}"
            )
        except RetryableResponseError as error:
            raise self._failure(
                error.response, f"after {policy.max_retries + 1} attempts"
            ) from None
        except requests.exceptions.RequestException as error:
            msg = (
                f"Token request {label} failed after {policy.max_retries + 1} attempts: "
                f"{describe_transient(error)}."
            )
            raise APIError(msg) from None
        if response.status_code >= 300:
            raise self._failure(response)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            token = None
        else:
            register_secret(token)
            token = token.strip()
            register_secret(token)
        if not token or not _TOKEN_CHARS.fullmatch(token):
            problem = "without an access_token" if not token else "with an unusable access_token"
            msg = f"Token request {label} answered {status_text(response.status_code)} {problem}."
            raise APIError(msg, status=response.status_code)
        lifetime = self._lifetime(payload.get("expires_in"), label, response.status_code)
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        logger.info("Fetched an OAuth2 access token, valid for %.0f s", lifetime)
        return token, self._clock() + lifetime - margin

    def _lifetime(self, expires_in: t.Any, label: str, status: int) -> float:
        """Seconds the token lives: ``expires_in`` read strictly, never below the floor."""
        if expires_in is None:
            return DEFAULT_TOKEN_LIFETIME
        seconds = None
        if isinstance(expires_in, (int, float, str)) and not isinstance(expires_in, bool):
            try:
                seconds = float(expires_in)
            except (ValueError, OverflowError):
                seconds = None
        if seconds is None or not math.isfinite(seconds):
            shown = repr(expires_in)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            msg = (
                f"Token request {label} answered {status_text(status)} with expires_in "
                f"{shown}, which is not a number of seconds."
            )
            raise APIError(msg, status=status)
        if seconds < MIN_TOKEN_LIFETIME:
            (self._logger or logging.getLogger(__name__)).warning(
                "Token request %s: expires_in %s is under %.0f s; the token is used for "
                "%.0f s, or until the API refuses it",
                label,
                expires_in,
                MIN_TOKEN_LIFETIME,
                MIN_TOKEN_LIFETIME,
            )
            seconds = MIN_TOKEN_LIFETIME
        return seconds

    def _failure(self, response: requests.Response, attempts: str = "") -> APIError:
        status = response.status_code
        # A 2xx body is a token reply, maybe cut off: never quote it.
        text = api_error_text(response.content) if status >= 300 else ""
        detail = status_text(status) + (f" with a body that is {_NOT_JSON}" if status < 300 else "")
        hint = (
            " Check the OAuth credentials in the tap's settings."
            if status in (400, 401, 403)
            else ""
        )
        msg = (
            f"Token request {request_label('POST', self.token_url)} answered {detail}"
            f"{' ' + attempts if attempts else ''}{': ' + text if text else ''}.{hint}"
        )
        return APIError(msg, status=status)
