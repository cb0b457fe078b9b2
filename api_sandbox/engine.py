"""The HTTP engine every fake API shares.

An API module only declares what differs between APIs: its name, how it authenticates,
its streams (as ``StreamSpec``s) and its route handlers. The engine does the rest once for
all of them: the keep-alive HTTP/1.1 server, routing by the first path segment
(``/<api>/...``), fault injection, the request log, ground truth and the ``/_sandbox``
control endpoints that scripts use when the sandbox runs as a separate process.
"""

from __future__ import annotations

import contextlib
import hashlib
import http
import socket
import struct
import sys
import threading
import time
import typing as t
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from api_sandbox.datagen import StreamData, StreamGenerator, StreamSpec
from api_sandbox.drift import Drift
from api_sandbox.faults import Fault, FaultSet, RequestLog

CONTROL_PREFIX = "_sandbox"
JSON = "application/json"


@dataclass
class Request:
    """One parsed request, as an API handler sees it (``path`` without the API prefix)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    #: The request target exactly as sent (``/<api>/path?query``), for APIs that check a
    #: client follows a URL they handed out verbatim.
    target: str = ""

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, or None."""
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def form(self) -> dict[str, str]:
        """The body as an ``application/x-www-form-urlencoded`` form (first value per key)."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}


@dataclass
class Response:
    """A complete reply; the engine writes status line, headers and body in one send."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON


class ApiError(Exception):
    """Raised by a handler to answer with the API's own error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """``method`` + exact ``path`` -> ``handler``. ``data`` is False for token endpoints:
    they are not data requests for faults and token use counting."""

    method: str
    path: str
    handler: Handler
    data: bool = True


class TokenIssuer:
    """A reusable OAuth2 token issuer for the APIs that use OAuth.

    An API's token endpoint checks the grant its own way, then calls ``issue``; its auth
    check calls ``valid``. The engine counts each token's data requests (``use``) so the
    ``token_expiry`` fault can answer 401 to a token that has been used N times, as a real
    server does when a token expires or is revoked mid-sync.
    """

    def __init__(self, api: str, seed: int, lifetime: int = 3600) -> None:
        self.api = api
        self.seed = seed
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._issued = 0
        self._expiry: dict[str, float] = {}
        self._uses: dict[str, int] = {}
        self._revoked: set[str] = set()

    @property
    def issued(self) -> int:
        """How many tokens have been issued (tests assert a tap caches its token)."""
        return self._issued

    def issue(self) -> dict[str, Any]:
        """A new token reply ``{"access_token","expires_in","token_type"}``."""
        with self._lock:
            self._issued += 1
            raw = f"{self.seed}:{self.api}:{self._issued}".encode()
            token = f"sbx-{self.api}-{self._issued}-{hashlib.sha256(raw).hexdigest()[:24]}"
            self._expiry[token] = time.time() + self.lifetime
            self._uses[token] = 0
        return {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}

    def valid(self, token: str | None) -> bool:
        """Whether ``token`` was issued here, is not revoked and has not expired."""
        if token is None:
            return False
        expiry = self._expiry.get(token)
        return expiry is not None and token not in self._revoked and time.time() < expiry

    def use(self, token: str) -> int:
        """Count one data request made with ``token``; returns the new count."""
        with self._lock:
            self._uses[token] = self._uses.get(token, 0) + 1
            return self._uses[token]

    def revoke(self, token: str) -> None:
        """Make ``token`` invalid from now on."""
        with self._lock:
            self._revoked.add(token)


class Api:
    """Base class of one fake API: data, auth, routes and the API's error bodies.

    Subclasses set ``name`` and ``specs`` (built in ``stream_specs``) and implement
    ``credentials``, ``authenticate`` and ``routes``. Streams whose specs share a dataset
    share one record list.
    """

    name: ClassVar[str] = ""
    token_issuer: TokenIssuer | None = None

    def __init__(
        self, seed: int, records: int | None = None, counts: Mapping[str, int] | None = None
    ) -> None:
        self.seed = seed
        self.specs: dict[str, StreamSpec] = {s.name: s for s in self.stream_specs()}
        self._gens: dict[str, StreamGenerator] = {}
        for spec in self.specs.values():
            if spec.key not in self._gens:
                self._gens[spec.key] = StreamGenerator(self.name, spec, seed)
        for spec in self.specs.values():
            if records is not None and spec.paginated:
                self._gens[spec.key].set_count(records)
        for stream, count in (counts or {}).items():
            if stream not in self.specs:
                raise KeyError(f"{self.name} has no stream {stream!r}")
            self._gens[self.specs[stream].key].set_count(count)
        self._routes: dict[tuple[str, str], Route] = {}
        self._paths: set[str] = set()
        for route in self.routes():
            self._routes[(route.method, route.path)] = route
            self._paths.add(route.path)

    # -- to implement ----------------------------------------------------------------------

    def stream_specs(self) -> list[StreamSpec]:
        """Every stream of the API."""
        raise NotImplementedError

    def credentials(self) -> dict[str, str]:
        """The settings a tap needs to talk to the sandbox, named as the tap's settings."""
        raise NotImplementedError

    def authenticate(self, request: Request) -> Response | None:
        """None when ``request`` may proceed, else the API's rejection (401/403)."""
        raise NotImplementedError

    def routes(self) -> list[Route]:
        """The API's endpoints."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> bytes:
        """The API's error body for ``status``; subclasses reshape it to the API's style."""
        return orjson.dumps({"error": {"message": message}})

    # -- provided --------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Response:
        """An error reply in the API's own format."""
        text = message or default_message(status)
        headers = [("Retry-After", "1")] if status == 429 else []
        return Response(status, self.error_body(status, text), headers)

    def match(self, method: str, path: str) -> Route | None:
        """The route for ``method`` ``path``, or None."""
        return self._routes.get((method, path))

    def knows_path(self, path: str) -> bool:
        """Whether some method is routed at ``path`` (405 rather than 404)."""
        return path in self._paths

    def streams(self) -> list[str]:
        """Stream names, in declaration order."""
        return list(self.specs)

    def data(self, stream: str) -> StreamData:
        """The current snapshot of ``stream`` (generated on first use)."""
        return self._gens[self.specs[stream].key].data()

    def records(self, stream: str) -> list[dict[str, Any]]:
        """Ground truth: fresh parsed copies of the current records, in API order."""
        loads = orjson.loads
        return [loads(row) for row in self.data(stream).rows]

    def mutate(self, stream: str, new: int = 0, modified: int = 0) -> list[str]:
        """Create and edit records between two syncs; see ``StreamGenerator.mutate``."""
        return self._gens[self.specs[stream].key].mutate(new, modified)

    def add_drift(self, drift: Drift) -> None:
        """New fields on ``drift.stream`` from its record ``drift.start`` on."""
        if drift.stream not in self.specs:
            raise KeyError(f"{self.name} has no stream {drift.stream!r}")
        self._gens[self.specs[drift.stream].key].add_drift(drift)

    def generator(self, stream: str) -> StreamGenerator:
        """The generator behind ``stream`` (to derive ids of another stream's records)."""
        return self._gens[self.specs[stream].key]


def default_message(status: int) -> str:
    """A short message in the style of the APIs' own error texts."""
    if status == 401:
        return "Unauthorized"
    if status == 429:
        return "Too many requests"
    if status >= 500:
        return "Internal error"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_response(payload: Any, status: int = 200) -> Response:
    """``payload`` serialised with orjson."""
    return Response(status, orjson.dumps(payload))


# ------------------------------------------------------------------------------- engine


class Engine:
    """Routes requests to APIs, applies faults, logs requests and serves control endpoints."""

    def __init__(
        self, apis: Iterable[Api], faults: Iterable[Fault] = (), drifts: Iterable[Drift] = ()
    ) -> None:
        self.apis: dict[str, Api] = {api.name: api for api in apis}
        faults = list(faults)
        for fault in faults:
            self.check_fault(fault)
        self.faults = FaultSet(faults)
        self._log: list[RequestLog] = []
        self._log_lock = threading.Lock()
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self._in_flight_peak = 0
        #: The schema drifts switched on, in order (see api_sandbox.drift).
        self.drifts: list[Drift] = []
        for drift in drifts:
            self.add_drift(drift)

    def add_drift(self, drift: Drift) -> None:
        """Switch on ``drift``: its stream's records gain the new fields (ground truth too)."""
        self.api(drift.api).add_drift(drift)
        self.drifts.append(drift)

    # data requests in flight (the server answers each connection in its own thread)
    @property
    def in_flight(self) -> dict[str, int]:
        """Data requests being answered now, and the most at once since the last reset.

        Counted from the moment a request is routed to its reply's last byte, latency
        faults included: what a client overlapping its requests keeps waiting at once.
        Token and control requests are not counted.
        """
        with self._flight_lock:
            return {"now": self._in_flight, "peak": self._in_flight_peak}

    def reset_in_flight(self) -> None:
        """Start counting the peak afresh (from the requests in flight now)."""
        with self._flight_lock:
            self._in_flight_peak = self._in_flight

    @contextlib.contextmanager
    def _flying(self, counted: bool) -> t.Iterator[Callable[[], None]]:
        """Count one request in flight; the callable it gives ends the count, once.

        The count ends as the reply starts to leave, not after its last byte: a client
        that sends its next request the moment a reply arrives must never find this one
        still counted (a peak above its true number in flight).
        """
        done = not counted

        def landed() -> None:
            nonlocal done
            if not done:
                done = True
                with self._flight_lock:
                    self._in_flight -= 1

        if counted:
            with self._flight_lock:
                self._in_flight += 1
                self._in_flight_peak = max(self._in_flight_peak, self._in_flight)
        try:
            yield landed
        finally:
            landed()

    # request log
    @property
    def requests(self) -> list[RequestLog]:
        """A copy of the request log."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._log_lock:
            self._log.clear()

    def log(self, entry: RequestLog) -> None:
        """Append ``entry`` to the request log."""
        with self._log_lock:
            self._log.append(entry)

    def check_fault(self, fault: Fault) -> None:
        """Refuse a ``grow`` fault whose list does not exist, before any request meets it."""
        if fault.kind != "grow":
            return
        if fault.api is None:
            raise ValueError("a grow fault needs api=")
        if fault.stream not in self.api(fault.api).specs:
            raise KeyError(f"{fault.api} has no stream {fault.stream!r}")

    def api(self, name: str) -> Api:
        """The API called ``name``."""
        try:
            return self.apis[name]
        except KeyError:
            raise KeyError(f"no API called {name!r}; have {sorted(self.apis)}") from None

    # serving
    def serve(self, conn: _Connection, method: str, target: str) -> None:
        """Answer one request read by ``conn``."""
        started = time.time()
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        segments = split.path.split("/", 2)
        first = unquote(segments[1]) if len(segments) > 1 else ""
        rest = "/" + segments[2] if len(segments) > 2 else "/"
        body = conn.read_body()
        if first == CONTROL_PREFIX:
            conn.send(self._control(method, rest, body))
            return
        api = self.apis.get(first)
        if api is None:
            reply = json_response({"error": {"message": f"Unknown API {first!r}"}}, 404)
            conn.send(reply)
            self.log(RequestLog(first, method, rest, query, body, started, 404, None))
            return
        request = Request(method, rest, query, conn.headers, body, target)
        route = api.match(method, rest)
        with self._flying(route is not None and route.data) as landed:
            self._serve_api(conn, api, route, request, started, landed)

    def _serve_api(
        self,
        conn: _Connection,
        api: Api,
        route: Route | None,
        request: Request,
        started: float,
        landed: Callable[[], None],
    ) -> None:
        method, rest, query, body = request.method, request.path, request.query, request.body
        decision = self.faults.decide(api.name, rest, route is not None and route.data, query)
        for grow in decision.grow:
            api.mutate(str(grow.stream), new=grow.rows)
        if decision.delay:
            time.sleep(decision.delay)
        fault = decision.fault
        label = decision.label
        if fault is None or fault.kind in ("truncate", "malformed"):
            reply, expired = self._respond(api, route, request)
            if expired is not None:
                label = "token_expiry"
        elif fault.kind == "status":
            reply = api.error(fault.status)
            if fault.body is not None:
                reply.body = fault.body
            reply.headers = [h for h in reply.headers if h[0] != "Retry-After"]
            if fault.retry_after is not None:
                reply.headers.append(("Retry-After", fault.retry_after))
        elif fault.kind == "rate_limit":
            reply = api.error(429)
        else:  # reset
            self.log(RequestLog(api.name, method, rest, query, body, started, 0, label))
            landed()
            conn.reset()
            return
        self.log(RequestLog(api.name, method, rest, query, body, started, reply.status, label))
        landed()
        if fault is not None and fault.kind == "truncate":
            conn.send(reply, truncate=True)
        elif fault is not None and fault.kind == "malformed":
            cut = reply.body[: max(len(reply.body) // 2, 1)]
            conn.send(Response(200, cut + b"<!-- malformed", reply.headers))
        else:
            conn.send(reply)

    def _respond(
        self, api: Api, route: Route | None, request: Request
    ) -> tuple[Response, Fault | None]:
        """The API's own reply: auth, routing, token expiry, then the handler."""
        if route is not None and not route.data:
            return self._call(api, route, request), None
        denied = api.authenticate(request)
        if denied is not None:
            return denied, None
        if route is None:
            if api.knows_path(request.path):
                return api.error(405, "Method not allowed"), None
            return api.error(404, "Not found"), None
        issuer = api.token_issuer
        token = request.bearer()
        if issuer is not None and token is not None:
            uses = issuer.use(token)
            expired = self.faults.expire_token(api.name, request.path, uses)
            if expired is not None:
                issuer.revoke(token)
                return api.error(401), expired
        return self._call(api, route, request), None

    @staticmethod
    def _call(api: Api, route: Route, request: Request) -> Response:
        try:
            return route.handler(request)
        except ApiError as exc:
            return api.error(exc.status, exc.message)
        except Exception as exc:  # a bug in a handler must still answer, and say what broke
            print(f"api_sandbox: {api.name} {request.path}: {exc!r}", file=sys.stderr)
            return api.error(500)

    # control endpoints
    def _control(self, method: str, path: str, body: bytes) -> Response:
        """``/_sandbox/...``: ground truth, request log, faults, drift and mutations over HTTP."""
        try:
            return self._control_inner(method, path, body)
        except (KeyError, ValueError, TypeError) as exc:
            return json_response({"error": {"message": str(exc)}}, 400)

    def _control_inner(self, method: str, path: str, body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts == ["health"] and method == "GET":
            return json_response({"status": "ok", "apis": sorted(self.apis)})
        if len(parts) == 3 and parts[0] == "records" and method == "GET":
            api = self.api(parts[1])
            if parts[2] not in api.specs:
                return json_response({"error": {"message": f"no stream {parts[2]!r}"}}, 404)
            rows = api.data(parts[2]).rows
            return Response(200, b"[" + b",".join(rows) + b"]")
        if parts == ["requests"]:
            if method == "GET":
                return json_response([entry.to_json() for entry in self.requests])
            if method == "DELETE":
                self.clear_requests()
                return json_response({"cleared": True})
        if parts == ["faults"]:
            if method == "GET":
                return json_response([f.to_json() for f in self.faults.list()])
            if method == "POST":
                fault = Fault.from_mapping(orjson.loads(body or b"{}"))
                self.check_fault(fault)
                self.faults.add(fault)
                return json_response(fault.to_json(), 201)
            if method == "DELETE":
                self.faults.clear()
                return json_response({"cleared": True})
        if parts == ["drift"]:
            if method == "GET":
                return json_response([d.to_json() for d in self.drifts])
            if method == "POST":
                drift = Drift.from_mapping(orjson.loads(body or b"{}"))
                self.add_drift(drift)
                return json_response(drift.to_json(), 201)
        if parts == ["in_flight"]:
            if method == "GET":
                return json_response(self.in_flight)
            if method == "DELETE":
                self.reset_in_flight()
                return json_response(self.in_flight)
        if parts == ["mutate"] and method == "POST":
            spec = orjson.loads(body or b"{}")
            api = self.api(spec["api"])
            if spec["stream"] not in api.specs:
                raise KeyError(f"{api.name} has no stream {spec['stream']!r}")
            ids = api.mutate(spec["stream"], int(spec.get("new", 0)), int(spec.get("modified", 0)))
            return json_response({"ids": ids})
        return json_response({"error": {"message": f"no control endpoint {method} {path}"}}, 404)


# ------------------------------------------------------------------------------- HTTP layer

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}


def _head(status: int, length: int, content_type: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
    ]
    lines.extend(f"{k}: {v}" for k, v in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(BaseHTTPRequestHandler):
    """One client connection; keeps it alive across requests (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Request logging to stderr is off: benchmarks make millions of requests."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def _dispatch(self) -> None:
        self.server.engine.serve(self, self.command, self.path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def read_body(self) -> bytes:
        """The request body (by Content-Length; chunked uploads are not used by the taps)."""
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        return self.rfile.read(int(length))

    def send(self, reply: Response, truncate: bool = False) -> None:
        """Write ``reply`` in one send; ``truncate`` writes half the body, then hangs up."""
        body = reply.body
        head = _head(reply.status, len(body), reply.content_type, reply.headers)
        if truncate:
            self.wfile.write(head + body[: len(body) // 2])
            self.close_connection = True
            return
        if self.command == "HEAD":
            body = b""
        self.wfile.write(head + body)

    def reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        sock.close()


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads that can cut its open connections on stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], engine: Engine) -> None:
        self.engine = engine
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Connection)

    def track(self, sock: socket.socket, is_open: bool) -> None:
        """Remember open connections so ``close_connections`` can end keep-alive clients."""
        with self._open_lock:
            if is_open:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_connections(self) -> None:
        """Shut every open client connection (their threads then exit)."""
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-request are normal under fault tests: stay quiet."""


class HttpServer:
    """The engine on a socket, served from a background thread or the calling thread."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self._server = _Server((host, port), engine)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve from the calling thread until ``stop`` is called from another one."""
        self._server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop accepting, cut open connections and release the port."""
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
