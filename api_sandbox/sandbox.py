"""``Sandbox``: every fake API on one local port, with ground truth and fault control.

Tests use it as a context manager (server in a background thread, free port); the CLI uses
the same object and blocks in ``serve_forever``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from api_sandbox.apis import API_CLASSES
from api_sandbox.drift import Drift
from api_sandbox.engine import Api, Engine, HttpServer
from api_sandbox.faults import Fault, RequestLog


class Sandbox:
    """All fake APIs behind ``http://127.0.0.1:PORT/<api>``.

    ``records`` sets the count of every paginated stream of every API; ``counts`` (per API,
    per stream) overrides single streams and wins over ``records``. ``faults`` are active
    from the first request, and so are ``drifts`` (new fields, api_sandbox.drift).
    ``options`` (per API) are keyword arguments of that API's class, for what only it has
    (``{"inventory": {"organization_id": "...", "token_lifetime": 5}}``).
    """

    def __init__(
        self,
        seed: int = 42,
        records: int | None = None,
        counts: Mapping[str, Mapping[str, int]] | None = None,
        faults: Iterable[Fault] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        drifts: Iterable[Drift] = (),
    ) -> None:
        counts = counts or {}
        options = options or {}
        unknown = (set(counts) | set(options)) - {cls.name for cls in API_CLASSES}
        if unknown:
            raise KeyError(f"unknown APIs in counts or options: {sorted(unknown)}")
        apis: list[Api] = [
            cls(seed, records, counts.get(cls.name), **options.get(cls.name, {}))
            for cls in API_CLASSES
        ]
        self.seed = seed
        self.engine = Engine(apis, faults, drifts)
        self._host = host
        self._port = port
        self._server: HttpServer | None = None
        self._stopped = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind and serve from a background daemon thread."""
        if self._server is None:
            self._server = HttpServer(self.engine, self._host, self._port)
            self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._stopped.set()

    def serve_forever(self) -> None:
        """Serve until ``stop`` is called (e.g. from a signal handler); the CLI's main loop."""
        self.start()
        while not self._stopped.wait(0.2):
            pass

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the sandbox must be started)."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        host, port = self._server.address
        return f"http://{host}:{port}"

    @property
    def apis(self) -> list[str]:
        """Names of the served APIs."""
        return list(self.engine.apis)

    def base_url(self, api: str) -> str:
        """The base URL a tap of ``api`` is configured with."""
        self.engine.api(api)
        return f"{self.url}/{api}"

    def credentials(self, api: str) -> dict[str, str]:
        """The demo credentials of ``api``, keyed by the tap's setting names.

        ``{base_url}`` in a value becomes the API's base URL here (a token URL served by
        the sandbox, where the real one lives on another host).
        """
        values = self.engine.api(api).credentials()
        if any("{base_url}" in value for value in values.values()):
            base = self.base_url(api)
            values = {name: value.replace("{base_url}", base) for name, value in values.items()}
        return values

    # -- ground truth ----------------------------------------------------------------------

    def streams(self, api: str) -> list[str]:
        """Stream names of ``api``."""
        return self.engine.api(api).streams()

    def records(self, api: str, stream: str) -> list[dict[str, Any]]:
        """The current records of ``stream`` in API order, as fresh dicts."""
        return self.engine.api(api).records(stream)

    def mutate(self, api: str, stream: str, new: int = 0, modified: int = 0) -> list[str]:
        """Create ``new`` records (at the front: newest first) and edit ``modified`` existing
        ones; returns the affected ids."""
        return self.engine.api(api).mutate(stream, new, modified)

    # -- request log and faults ------------------------------------------------------------

    @property
    def requests(self) -> list[RequestLog]:
        """Every request so far (control endpoints excluded), oldest first."""
        return self.engine.requests

    @property
    def in_flight(self) -> dict[str, int]:
        """``{"now": n, "peak": p}``: data requests being answered, and the most at once."""
        return self.engine.in_flight

    def reset_in_flight(self) -> None:
        """Count the peak of data requests in flight afresh."""
        self.engine.reset_in_flight()

    def clear_requests(self) -> None:
        """Forget logged requests."""
        self.engine.clear_requests()

    def add_fault(self, fault: Fault) -> None:
        """Activate ``fault`` (counters start at zero)."""
        self.engine.check_fault(fault)
        self.engine.faults.add(fault)

    def add_drift(self, drift: Drift) -> None:
        """Switch on ``drift``: new fields on its stream from its ``start`` on."""
        self.engine.add_drift(drift)

    def clear_faults(self) -> None:
        """Deactivate every fault."""
        self.engine.faults.clear()
