"""Fault injection and the request log.

Faults are counting-based, never random, so a test that injects "one 503 on the second
request" gets exactly that on every run. ``FaultSet`` decides, under one lock, which fault
(if any) a request gets; the engine then acts on that decision.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

KINDS = (
    "status", "reset", "truncate", "latency", "malformed", "rate_limit", "token_expiry", "grow",
)  # fmt: skip


def key_values(spec: str, what: str) -> list[tuple[str, str]]:
    """The ``key=value`` pairs of a CLI spec (``kind=status,api=rewards``), stripped."""
    pairs = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        if not sep:
            raise ValueError(f"{what} spec part {part!r} is not key=value")
        pairs.append((key.strip(), raw.strip()))
    return pairs


def check_fields(cls: type, data: dict[str, Any], what: str) -> None:
    """A JSON object for dataclass ``cls`` names only its fields: a typo is an error."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} fields: {sorted(unknown)}")


@dataclass
class Fault:
    """One injected misbehaviour.

    ``times`` counts the requests that get the fault (None = forever), after ``skip``
    matching requests have gone through untouched. For ``rate_limit``, ``times`` counts the
    429 replies, ``per_second`` is the number of requests allowed per ``window`` seconds (1 by
    default) and the window slides, unless ``fixed_window`` makes it fixed windows aligned to
    the clock (``per_second=100,window=60,fixed_window=true``: 100 a calendar minute, as the
    inventory API counts); for ``token_expiry`` it counts the tokens that are
    expired (each after ``after`` successful data requests; ``skip`` is not used).
    ``path`` None matches every data request of the API; a given path matches that exact
    path (without the API prefix), token endpoints included. ``query`` (``offset=200``,
    ``a=1&b=2``) narrows it to requests whose query string has each of those values: one
    page of a list, however its requests overlap and in whatever order they arrive.

    ``grow`` replaces no reply: it is a list that changes under a sync. Before the matching
    request after the first ``skip``, it inserts ``rows`` new records at the head of
    ``stream`` (newest first, as ``mutate`` does), ``times`` times (each on one request).
    """

    kind: str
    api: str | None = None
    path: str | None = None
    status: int = 503
    retry_after: str | None = None
    body: bytes | None = None
    times: int | None = 1
    skip: int = 0
    seconds: float = 0.0
    per_second: int = 10
    after: int = 0
    window: float = 1.0
    fixed_window: bool = False
    stream: str | None = None
    rows: int = 0
    query: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "grow" and (not self.stream or self.rows < 1):
            raise ValueError("a grow fault needs stream= and rows= (at least 1)")
        if isinstance(self.body, str):
            self.body = self.body.encode()

    def matches(
        self, api: str, path: str, is_data: bool, query: dict[str, list[str]] | None = None
    ) -> bool:
        """Whether a request to ``api`` at ``path`` is subject to this fault."""
        if self.api is not None and self.api != api:
            return False
        if self.query is not None:
            asked = query or {}
            for part in self.query.split("&"):
                name, _, value = part.partition("=")
                if value not in asked.get(name, ()):
                    return False
        if self.path is None:
            return is_data
        return self.path == path

    def to_json(self) -> dict[str, Any]:
        """Fields as JSON-friendly values (``body`` as text)."""
        out = asdict(self)
        if self.body is not None:
            out["body"] = self.body.decode("utf-8", "replace")
        return out

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Fault:
        """A fault from a JSON object of its fields; unknown keys are an error, not ignored."""
        check_fields(cls, data, "fault")
        return cls(**data)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse the CLI form ``kind=status,api=rewards,status=429,retry_after=2,times=1``.

        ``times=none`` (or ``forever``) means no limit; other values are converted to the
        field's type.
        """
        values: dict[str, Any] = {}
        for key, raw in key_values(spec, "fault"):
            if key in ("status", "skip", "per_second", "after", "rows"):
                values[key] = int(raw)
            elif key == "times":
                values[key] = None if raw.lower() in ("none", "forever", "") else int(raw)
            elif key in ("seconds", "window"):
                values[key] = float(raw)
            elif key == "fixed_window":
                values[key] = raw.lower() in ("1", "true", "yes")
            elif key == "body":
                values[key] = raw.encode()
            else:
                values[key] = raw or None
        if "kind" not in values:
            raise ValueError(f"fault spec {spec!r} has no kind=")
        return cls.from_mapping(values)


@dataclass
class RequestLog:
    """One request as the sandbox saw it. ``path`` excludes the API prefix; ``status`` is 0
    when the connection was reset without a reply."""

    api: str
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    time: float
    status: int
    fault: str | None

    def to_json(self) -> dict[str, Any]:
        """Fields as JSON-friendly values (``body`` as text)."""
        out = asdict(self)
        out["body"] = self.body.decode("utf-8", "replace")
        return out


@dataclass
class _State:
    fault: Fault
    seen: int = 0
    fired: int = 0
    window: deque[float] = field(default_factory=deque)
    fixed_start: float = 0.0
    fixed_count: int = 0


@dataclass
class Decision:
    """What the engine must do to one request: delay it, then maybe replace its reply."""

    delay: float = 0.0
    fault: Fault | None = None  # the fault that decides the reply (None: serve normally)
    latency_applied: bool = False
    grow: list[Fault] = field(default_factory=list)  # lists to grow before replying

    @property
    def label(self) -> str | None:
        """The fault kind for the request log."""
        if self.fault is not None:
            return self.fault.kind
        if self.latency_applied:
            return "latency"
        return "grow" if self.grow else None


def _admit(state: _State, fault: Fault) -> bool:
    """Whether the rate limit lets one more request through now (and count it if so)."""
    if fault.fixed_window:
        now = time.time()
        start = now - now % fault.window
        if start != state.fixed_start:
            state.fixed_start, state.fixed_count = start, 0
        if state.fixed_count < fault.per_second:
            state.fixed_count += 1
            return True
        return False
    now = time.monotonic()
    window = state.window
    while window and window[0] <= now - fault.window:
        window.popleft()
    if len(window) < fault.per_second:
        window.append(now)
        return True
    return False


class FaultSet:
    """The active faults with their counters. Thread-safe."""

    def __init__(self, faults: tuple[Fault, ...] | list[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._states: list[_State] = [_State(f) for f in faults]

    def add(self, fault: Fault) -> None:
        """Activate ``fault`` with fresh counters."""
        with self._lock:
            self._states.append(_State(fault))

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._states.clear()

    def list(self) -> list[Fault]:
        """The active faults, in the order they are evaluated."""
        with self._lock:
            return [s.fault for s in self._states]

    def decide(
        self, api: str, path: str, is_data: bool, query: dict[str, list[str]] | None = None
    ) -> Decision:
        """Count this request against every matching fault, in order, until one replaces the
        reply. Latency faults add up; token_expiry is decided later (it needs the token)."""
        decision = Decision()
        if not self._states:
            return decision
        with self._lock:
            for state in self._states:
                fault = state.fault
                if fault.kind == "token_expiry" or not fault.matches(api, path, is_data, query):
                    continue
                seen = state.seen
                state.seen += 1
                if seen < fault.skip:
                    continue
                if fault.kind == "rate_limit":
                    if fault.times is not None and state.fired >= fault.times:
                        continue
                    if _admit(state, fault):
                        continue
                    state.fired += 1
                    decision.fault = fault
                    break
                if fault.times is not None and state.fired >= fault.times:
                    continue
                state.fired += 1
                if fault.kind == "latency":
                    decision.delay += fault.seconds
                    decision.latency_applied = True
                    continue
                if fault.kind == "grow":
                    decision.grow.append(fault)
                    continue
                decision.fault = fault
                break
        return decision

    def expire_token(self, api: str, path: str, uses: int) -> Fault | None:
        """The token_expiry fault that rejects a token on its ``uses``-th data request, if any.

        A token works for ``after`` data requests; the next one is rejected and the token is
        revoked by the caller. Each rejected token counts as one of the fault's ``times``.
        """
        if not self._states:
            return None
        with self._lock:
            for state in self._states:
                fault = state.fault
                if fault.kind != "token_expiry" or not fault.matches(api, path, True):
                    continue
                if uses <= fault.after:
                    continue
                if fault.times is not None and state.fired >= fault.times:
                    continue
                state.fired += 1
                return fault
        return None
