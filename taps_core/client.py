"""The base stream of every tap: requests, retries, errors and parsing, written once.

A tap's streams subclass :class:`CollectionStream` and declare data (name, path,
``records_jsonpath``, primary keys, a schema file, a paginator); the behaviour the
contract asks of all five APIs lives here:

- each body is parsed once, with numbers kept exact (floats become ``Decimal``);
- retryable statuses, resets, timeouts and truncated or unparsable bodies go through
  :func:`taps_core.retry.call_with_retries`;
- a 401 to an OAuth token invalidates the token and replays the request once;
- any other failure becomes one :class:`taps_core.errors.APIError` naming the tap,
  stream, method, path, status and the API's own error text.
"""

from __future__ import annotations

import contextlib
import copy
import decimal
import logging
import operator
import re
import sys
import typing as t
from functools import cache, cached_property
from pathlib import Path

import msgspec
import orjson
import requests
from singer_sdk import RESTStream, Stream
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.jsonpath import extract_jsonpath
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.pagination import SinglePagePaginator

from taps_core import prefetch, progress
from taps_core.auth import bearer_token
from taps_core.connection import refusal_is_final
from taps_core.drift import DEFAULT_POLICY, EVOLVE, FAIL, SchemaDrift
from taps_core.errors import (
    FAILED_STREAM_ATTRIBUTE,
    APIError,
    RetryableResponseError,
    api_error_text,
    attempts_text,
    describe_request_error,
    request_label,
    status_text,
)
from taps_core.pagination import OffsetTotalPaginator, OverlappingOffsetPaginator, RepeatGuard
from taps_core.records import Conformer, Pruner, RecordLine, UnsupportedSchemaError
from taps_core.retry import (
    RETRYABLE_STATUSES,
    TRANSIENT_ERRORS,
    RetryPolicy,
    call_with_retries,
    describe_transient,
)
from taps_core.signals import stop_with_state
from taps_core.timestamps import utc_text

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
_TOP_LEVEL_LIST = re.compile(r"^\$\.([A-Za-z_]\w*)\[\*\]$")


@cache
def _read_schema(path: Path) -> bytes:
    return path.read_bytes()


def load_schema(path: Path) -> dict:
    """A fresh copy of a schema file (the SDK may edit the dict it is given)."""
    return orjson.loads(_read_schema(path))


def decode_json(content: bytes) -> t.Any:
    """Parse a body once, keeping every number exact (decimals as ``Decimal``)."""
    return _decoder.decode(content)


class CollectionStream(RESTStream[t.Any]):
    """Base for all streams of the collection; subclasses are declarations."""

    #: Where the stream's JSON schema file lives (the tap package's ``schemas/``).
    schemas_dir: t.ClassVar[Path | None] = None
    #: Statuses retried with backoff; a tap adds to it (reporting adds 400).
    retry_statuses: t.ClassVar[frozenset[int]] = RETRYABLE_STATUSES
    #: Told to the user with a 401 or 403, e.g. "Check the api_key setting."
    auth_hint: t.ClassVar[str] = "Check the tap's credentials."
    #: Headers sent on every data request, each the value of a setting:
    #: ``{"legal-entity": "legal_entity"}``. Mark such a setting secret if it is one.
    header_settings: t.ClassVar[dict[str, str]] = {}

    def __init__(self, tap: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        if self.schemas_dir is not None and kwargs.get("schema") is None:
            kwargs["schema"] = load_schema(self.schemas_dir / f"{self.name}.json")
        super().__init__(tap, *args, **kwargs)
        if type(self).post_process is not Stream.post_process:
            self._own_post_process = self.post_process
            self.post_process = self._post_process_once  # type: ignore[method-assign]

    # -- declarations -------------------------------------------------------------------

    @property
    def url_base(self) -> str:
        return str(self.config["base_url"]).rstrip("/")

    @property
    def authenticator(self) -> t.Any:
        """The tap's one authenticator, so every stream shares one OAuth token."""
        return self._tap.authenticator

    @property
    def http_headers(self) -> dict:
        """The SDK's headers plus the declared :attr:`header_settings`, where set.

        A setting left unset sends no header: the API's own refusal (a 403 naming the
        header) says more than a request that never went out.
        """
        headers = super().http_headers
        for header, setting in self.header_settings.items():
            value = self.config.get(setting)
            if value is not None and value != "":
                headers[header] = str(value)
        return headers

    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout", 300))

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_config(self.config, self.retry_statuses)

    def get_new_paginator(self) -> t.Any:
        """One page unless the stream declares a paginator."""
        return SinglePagePaginator()

    @property
    def requests_session(self) -> requests.Session:
        """A session that reads proxy and CA settings from the environment once.

        With ``trust_env`` on, requests looks up proxies (and ``.netrc``) in the
        environment on every request; resolving them once keeps them honoured at
        no per-request cost.
        """
        session = self._requests_session
        if session is None or session.trust_env:
            session = session or requests.Session()
            settings = session.merge_environment_settings(self.url_base, {}, None, None, None)
            session.proxies.update(settings["proxies"])
            session.verify = settings["verify"]
            session.trust_env = False
            workers = int(self.config.get("max_concurrent_requests") or 1)
            if workers > _POOL_CONNECTIONS:  # one connection a request in flight, kept alive
                for prefix in ("http://", "https://"):
                    session.mount(prefix, requests.adapters.HTTPAdapter(pool_maxsize=workers))
            self._requests_session = session
        return session

    # -- parsing ------------------------------------------------------------------------

    @cached_property
    def _top_level_key(self) -> str | None:
        match = _TOP_LEVEL_LIST.match(self.records_jsonpath)
        return match.group(1) if match else None

    @staticmethod
    def body(response: requests.Response) -> t.Any:
        """The response's parsed JSON, parsed on first use and kept on the response."""
        parsed = getattr(response, "_parsed_body", _MISSING)
        if parsed is _MISSING:
            parsed = decode_json(response.content)
            response._parsed_body = parsed  # type: ignore[attr-defined]
        return parsed

    def rows(self, response: requests.Response) -> list[dict]:
        """The page's records as the API sent them, extracted once per response."""
        rows = getattr(response, "_rows", None)
        if rows is None:
            body = self.body(response)
            key = self._top_level_key
            if key is not None:
                rows = (body.get(key) if isinstance(body, dict) else None) or []
            elif self.records_jsonpath == "$":
                rows = [body] if body else []
            else:
                rows = list(extract_jsonpath(self.records_jsonpath, input=body))
            response._rows = rows  # type: ignore[attr-defined]
        return rows

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        return self.rows(response)

    #: Where an API that answers errors with a 2xx puts them (``$.RESPONSE.ERRORS``);
    #: None trusts the status. See :meth:`check_body`.
    body_errors_jsonpath: t.ClassVar[str | None] = None

    def check_body(self, response: requests.Response) -> None:
        """Raise for an API error hidden in a 2xx body, where the stream declares one.

        Such a reply carries no records: read as a page it would end the list early and
        the sync would "succeed" with rows missing. It is no transient failure either
        (the same request gets the same answer), so it fails at once, with the API's
        own words.
        """
        path = self.body_errors_jsonpath
        if path is None:
            return
        errors = [e for e in extract_jsonpath(path, input=self.body(response)) if e]
        if not errors:
            return
        text = api_error_text(orjson.dumps(errors, default=str)) or "(no message)"
        label = request_label(response.request.method, response.url)
        msg = (
            f"{self.tap_name} stream '{self.name}': {label} answered "
            f"{status_text(response.status_code)} with an error from the API: {text}."
        )
        raise APIError(msg, status=response.status_code)

    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """The SDK's log, without its "unhandled error" line for a failure we tell.

        The SDK logs "An unhandled error occurred while syncing" at ERROR before a
        stream's exception leaves ``sync``, once for the stream and once more for each
        parent of a child stream. The entry point tells every failure, expected or
        not, in one line of its own, so that line (at DEBUG here) would make one
        failure look like several. The innermost stream's name stays on the
        exception, for the entry point to name it.
        """
        if level >= logging.ERROR and message.startswith("An unhandled error occurred"):
            current = sys.exc_info()[1]
            if current is not None:
                level = logging.DEBUG
                if getattr(current, FAILED_STREAM_ATTRIBUTE, None) is None:
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(current, FAILED_STREAM_ATTRIBUTE, self.name)
        super().log(message, *args, level=level, **kwargs)

    def finalize_state_progress_markers(self, state: dict | None = None) -> None:
        """After the stream's sync: its final count and time (taps_core.progress)."""
        progress.finish(self)
        super().finalize_state_progress_markers(state)

    def log_sync_costs(self) -> None:
        """Called for every stream once all have synced: the sync's summary line."""
        super().log_sync_costs()
        progress.summarise(self)

    # -- the record path (see taps_core.records) ----------------------------------------

    @cached_property
    def _fast_record_path(self) -> tuple[Conformer, RecordLine, Pruner | None] | None:
        """The fast path, unless the SDK's is needed: stream maps, flattening, a type
        conformance level other than the default, or a schema the compiled conformer
        cannot read as the SDK does. Deselected properties are pruned on it (Pruner).
        Rebuilt when schema drift amends the schema (:meth:`_schema_drifted`)."""
        maps = self.stream_maps
        if len(maps) != 1 or type(maps[0]) is not SameRecordTransform:
            return None
        if self._tap.config.get("flattening_enabled"):
            return None
        if self.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.RECURSIVE:
            return None
        drift = self._drift
        try:
            conform = Conformer(
                drift.schema,
                check_values=not self._values_are_json(),
                keep_undeclared=drift.keep_undeclared,
            )
        except UnsupportedSchemaError as error:
            self.logger.debug("Stream %s: the SDK's record path (%s)", self.name, error)
            return None
        prune = Pruner(self.mask)
        return conform, RecordLine(maps[0].stream_alias, self._stream_version), prune or None

    #: The methods between a parsed body and a written record. Where a stream keeps all
    #: of them as they are here, its values are what the JSON parse gave, and the fast
    #: path need not look for others (``datetime``, floats) that the SDK would convert.
    _RECORD_SOURCES = (
        "request_records",
        "parse_response",
        "rows",
        "get_records",
        "post_process",
        "_process_record",
        "partitions",
    )

    def _values_are_json(self) -> bool:
        own = type(self)
        return self.parent_stream_type is None and all(
            getattr(own, name) is getattr(CollectionStream, name) for name in self._RECORD_SOURCES
        )

    def _write_record_message(self, record: dict) -> None:
        fast = self._fast_record_path
        if fast is None:
            self._write_sdk_record(record)
            return
        conform, line, prune = fast
        if prune is not None:
            prune(record)
        if self._drifted and self._drift_changes(record, found=False):
            conform = self._rebuilt_conformer()
        body = conform.encode(record)
        if conform.found:  # a record the schema fits, so far: no work
            body = self._drifted_record(record, body, conform)
        line.write(body)
        self.state_manager.is_flushed = False
        if len(conform.unmapped) != self._unmapped_reported:
            self._unmapped_reported = len(conform.unmapped)
            self._drift.dropped(conform.unmapped)

    _unmapped_reported = 0
    #: Set once drift has declared a property: its values are checked a record (widening),
    #: before the record is conformed: conforming makes a boolean-only property's other
    #: values booleans, in place, so a 5 after ``true`` would be written as ``true``.
    _drifted = False

    def _rebuilt_conformer(self) -> Conformer:
        fast = self._fast_record_path  # rebuilt if the schema changed
        assert fast is not None  # what chose the fast path has not changed
        return fast[0]

    @cached_property
    def _drift(self) -> SchemaDrift:
        """The stream's drift policy and its schema as drift amends it (taps_core.drift)."""
        policy = str(self.config.get("schema_drift") or DEFAULT_POLICY)
        return SchemaDrift(self.name, self.effective_schema, policy, self.logger)

    def _drifted_record(self, record: dict, body: bytes, conform: Conformer) -> bytes:
        """``record`` held a property the schema lacks.

        Fail stops here, before the record is written; evolve amends the schema, writes
        the SCHEMA message first and returns the record conformed to the new schema.
        """
        found, conform.found = conform.found, False
        if not self._drift_changes(record, found=found):
            return body
        conform = self._rebuilt_conformer()
        body = conform.encode(record)
        conform.found = False
        return body

    def _drift_changes(self, record: dict, *, found: bool) -> bool:
        """Act on the policy for ``record``; whether it must be conformed again."""
        drift = self._drift
        if found and drift.policy == FAIL:
            names = drift.new_properties(record)
            if names:
                stop_with_state(self._tap, drift.fail_message(self.tap_name, names))
            return False
        if drift.policy != EVOLVE or not (found or drift.needs_change(record)):
            return False
        if drift.evolve(record):
            self._schema_drifted()
        return True

    def _schema_drifted(self) -> None:
        """The amended schema, in force: on the record paths, in the stream maps (the
        SDK's own re-registration of a changed schema) and in a SCHEMA message."""
        schema = self._drift.schema
        self._input_schema = schema
        self._drifted = True
        # Registered as the SDK registers the catalog's: without what it deselects, or
        # the amended SCHEMA would declare deselected properties again (get_selected_schema
        # copies, so the mapper never shares the schema drift goes on amending).
        self._tap.mapper.register_raw_stream_schema(
            self.name, get_selected_schema(self.name, schema, self.mask), self.primary_keys
        )
        self._stream_maps = []  # read again from the mapper
        self.__dict__.pop("_fast_record_path", None)
        self.__dict__.pop("_drift_detector", None)
        self._write_schema_message()

    @cached_property
    def _drift_detector(self) -> tuple[Conformer | None, Pruner | None]:
        """On the SDK's path: the compiled set comparisons that find drift, and the
        pruner that removes deselected properties first (so drift cannot bring them back).
        Under ``drop`` they drop new properties themselves, with one warning each, as on
        the fast path: the SDK would warn again for every new set of them it meets."""
        drift = self._drift
        prune = Pruner(self.mask) or None
        try:
            detect = Conformer(
                drift.schema, check_values=False, keep_undeclared=drift.keep_undeclared
            )
        except UnsupportedSchemaError:
            return None, prune  # the SDK's own handling (dropped, with its warning)
        return detect, prune

    def _write_sdk_record(self, record: dict) -> None:
        """The SDK's path (stream maps, flattening), with the drift policy applied first."""
        detect, prune = self._drift_detector
        if detect is not None:
            if prune is not None:
                prune(record)
            if self._drifted and self._drift_changes(record, found=False):
                detect = self._drift_detector[0]  # widened before conforming (_drifted)
        if detect is not None:
            record = detect(record)  # a new dict when drop removed a top-level property
            if detect.found:
                detect.found = False
                self._drift_changes(record, found=True)
            elif len(detect.unmapped) != self._unmapped_reported:
                self._unmapped_reported = len(detect.unmapped)
                self._drift.dropped(detect.unmapped)
        super()._write_record_message(record)

    def _process_record(
        self,
        record: dict,
        child_context: Context | None = None,
        partition_context: Context | None = None,
    ) -> None:
        """Skip the SDK's per-record child-context work for a stream with no children."""
        if self.child_streams or partition_context:
            super()._process_record(record, child_context, partition_context)

    def _increment_stream_state(
        self, latest_record: dict, *, context: Context | None = None
    ) -> None:
        """Advance the bookmark by instants, handing the SDK only what can move it.

        The SDK keeps the greatest replication value compared as strings. For a
        ``date-time`` key that is wrong across offsets (``10:00+05:30`` is ``04:30Z``)
        and across spellings (``Z`` against ``+00:00``), so the SDK is handed the value
        as :func:`taps_core.timestamps.utc_text`, whose strings order as the instants:
        the bookmark is that UTC form. A value no greater than the greatest seen cannot
        change the state and is skipped, except where the SDK checks the sort order (a
        sorted stream), which it must see every value for.
        """
        key = self.replication_key
        if not key or self.replication_method != "INCREMENTAL":
            super()._increment_stream_state(latest_record, context=context)
            return
        value = latest_record.get(key)
        if isinstance(value, str) and self._timestamp_bookmark:
            try:
                value = utc_text(value)
            except ValueError:
                pass  # not a timestamp: the SDK compares it as it is
            else:
                latest_record = {**latest_record, key: value}
                if context is not None or self._greatest_seen is None:
                    self._bookmark_as_utc(context)
        if context is not None or not isinstance(value, str):
            super()._increment_stream_state(latest_record, context=context)
            return
        greatest = self._greatest_seen
        if greatest is not None and value <= greatest and not self._sdk_checks_sort:
            return
        super()._increment_stream_state(latest_record, context=context)
        if greatest is None or value > greatest:
            self._greatest_seen = value

    _greatest_seen: str | None = None

    def _bookmark_as_utc(self, context: Context | None) -> None:
        """A bookmark from an earlier state (``...Z``) in the form new values take.

        Where the SDK checks the sort order it compares new values with the state's;
        a ``Z`` there would sort after the same instant written ``+00:00``.
        """
        state = self.get_context_state(context)
        value = state.get("replication_key_value")
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                state["replication_key_value"] = utc_text(value)

    @cached_property
    def _timestamp_bookmark(self) -> bool:
        return self.is_timestamp_replication_key

    @cached_property
    def _sdk_checks_sort(self) -> bool:
        """Whether the SDK raises on a value below the greatest (it must see them all)."""
        return bool(self.is_sorted and self.check_sorted and self.state_partitioning_keys is None)

    # -- requests -----------------------------------------------------------------------

    def record_key(self, record: dict) -> t.Hashable:
        """What identifies a record within this stream, for the repeat guard.

        Called on the record as emitted (after :meth:`post_process`), so a key that
        ``post_process`` builds or lifts is the key the guard sees.
        """
        keys = self.primary_keys or ()
        if keys:
            return tuple(record.get(k) for k in keys)
        return msgspec.json.encode(record)

    def list_total(self, response: requests.Response) -> int | None:
        """The list's size as this reply states it; None where the API does not say.

        The repeat guard reads it to tell a list that grew during the sync (its rows
        shift onto later pages: read on) from one that serves the same rows at every
        offset (stop).
        """
        return None

    @cached_property
    def _key_hashes(self) -> t.Callable[[list[dict]], list[int]]:
        """The hashes the repeat guard keeps of a page's keys, built once per stream.

        A key that contains None identifies nothing (its field is missing or null), so
        such a record is hashed by its whole content instead: it is a repeat only of an
        identical copy of itself, never of another record with a null key. Strings hash
        with SipHash; other values go through a tuple's hash, because an int hashes to
        itself and consecutive ids would pile up in neighbouring slots of the table.
        A page of string ids, the common case, is hashed without a Python call a record.
        """
        encode = msgspec.json.encode
        keys = tuple(self.primary_keys or ())
        custom = type(self).record_key is not CollectionStream.record_key
        if not custom and not keys:
            return lambda page: [hash(encode(record)) for record in page]
        key_of = self.record_key if custom else lambda record: tuple(map(record.get, keys))

        def one_hash(record: dict) -> int:
            key = key_of(record)
            if key is None or (type(key) is tuple and None in key):
                return hash(encode(record))
            if type(key) is tuple and len(key) == 1 and type(key[0]) is str:
                key = key[0]
            try:
                return hash(key if type(key) in (str, bytes, tuple) else (key,))
            except TypeError:
                return hash(encode(key))

        if custom or len(keys) > 1:
            return lambda page: [one_hash(record) for record in page]
        get = operator.methodcaller("get", keys[0])

        def single(page: list[dict]) -> list[int]:
            values = [*map(get, page)]
            if {*map(type, values)} == _ONLY_STR:
                return [*map(hash, values)]
            return [one_hash(record) for record in page]

        return single

    #: The stream's own ``post_process``, run in :meth:`request_records`; None if none.
    _own_post_process: t.Callable[[dict, Context | None], dict | None] | None = None
    _last_processed: dict | None = None

    def _post_process_once(self, row: dict, context: Context | None = None) -> dict | None:
        """Stands in for ``post_process`` so the SDK does not run it a second time.

        :meth:`request_records` runs the stream's ``post_process`` before the repeat
        guard (keys come from the record as emitted), then the SDK calls
        ``post_process`` on each record it receives; for the record just handed over
        that call returns it as it is. Any other call runs the real one.
        """
        if row is self._last_processed:
            return row
        assert self._own_post_process is not None
        return self._own_post_process(row, context)

    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        """Walk the pages, emitting each record once, never looping on a repeated page.

        With ``max_concurrent_requests`` above 1, the pages this stream will certainly
        ask for next are fetched ahead (:mod:`taps_core.prefetch`); the pages are still
        read here, one after the other, from the requests this loop builds.
        """
        with prefetch.lane_in_use(self) as lane:
            yield from self._read_pages(context, lane)

    def _read_pages(self, context: Context | None, lane: prefetch.Lane | None) -> t.Iterator[dict]:
        paginator = self.get_new_paginator()
        send = self.request_decorator(self._request)
        if context is None:
            self._greatest_seen = None
        guard = RepeatGuard(self._key_hashes)
        track = progress.tracker(self)
        process = self._own_post_process
        overlapping = isinstance(paginator, OverlappingOffsetPaginator)
        limit = paginator.limit if isinstance(paginator, OffsetTotalPaginator) else None
        group = object()  # this read's plan in the lane
        planned = False
        first = True
        children = self._children_to_feed() if lane is not None else ()
        try:
            with self.get_http_request_counter() as request_counter:
                request_counter.with_context(context)
                while not paginator.finished:
                    token = paginator.current_value
                    prepared = self._prepare_request(context=context, page=paginator)
                    ahead = False
                    if lane is None:
                        response = send(prepared, context)
                    else:
                        response, ahead = lane.take(prepared, context, send)
                        if first and self.parent_stream_type is None:
                            # The API took this stream's first request (the credentials,
                            # the settings): now the next streams' first pages may go too.
                            self._tap.prefetch_upcoming(self)
                        first = False
                        if not planned or not ahead:  # the first page, or a guess went wrong
                            following = self.planned_tokens(paginator, response)
                            if following is not None:
                                lane.plan(group, ((context, value) for value in following))
                                planned = True
                            else:  # walk ahead from this reply (anew, if the chain fell behind)
                                self._chain_ahead(lane, group, context, paginator, response)
                    request_counter.increment()
                    rows = list(self.parse_response(response))
                    page = rows
                    if process is not None:
                        page = [r for r in (process(row, context) for row in rows) if r is not None]
                    again = paginator.asked_again(token) if overlapping else 0
                    fresh, stop = guard.admit(
                        page,
                        total=self.list_total(response),
                        token=token,
                        again=again,
                        limit=None if limit is None else limit + again,
                    )
                    if stop is not None:
                        self.logger.info(
                            "Stream %s: page at %s repeats records already emitted (%s); "
                            "the list is complete.",
                            self.name,
                            token,
                            stop,
                        )
                        break
                    if page and not fresh:
                        self.logger.info(
                            "Stream %s: page at %s repeats records already emitted (the "
                            "list may have grown during the sync); reading on.",
                            self.name,
                            token,
                        )
                    if lane is not None:
                        if children:
                            self._feed_children(children, fresh, context)
                        if fresh and ahead and lane.waited:  # proved true, and was awaited
                            lane.widen(group)
                        else:
                            lane.fill()
                    if process is None:
                        yield from fresh
                    else:
                        for record in fresh:
                            self._last_processed = record
                            yield record
                        self._last_processed = None
                    track.page(len(fresh), response)
                    if not rows and not paginator.continue_if_empty(response):
                        break
                    paginator.advance(response)
        finally:
            if lane is not None:
                lane.end(group)
            guard.close()

    # -- requests fetched ahead (taps_core.prefetch) ------------------------------------

    @cached_property
    def _prefetch_lane(self) -> prefetch.Lane | None:
        """This stream's lane of requests fetched ahead; None for a sequential sync."""
        pool = self._tap.prefetch_pool
        if pool is None:
            return None
        self.requests_session  # built here, before a worker can race to build it  # noqa: B018
        return prefetch.Lane(self, pool, self.request_decorator(self._request))

    def _chain_ahead(
        self,
        lane: prefetch.Lane,
        group: object,
        context: Context | None,
        paginator: t.Any,
        response: requests.Response,
    ) -> None:
        """Walk the rest of a list paged by its replies ahead of the reader, if any.

        The lane's copy of the paginator moves as the reader's will: this reply first,
        now, before its records are written; each later reply as it arrives.
        """
        shadow = copy.copy(paginator)
        try:
            if not self.rows(response) and not shadow.continue_if_empty(response):
                return
            shadow.advance(response)
        except Exception:  # the reader meets it itself, where it would
            return
        lane.chain(group, context, shadow)

    def planned_tokens(self, paginator: t.Any, response: requests.Response) -> t.Iterable | None:
        """The tokens of the pages that follow this reply, known without their replies.

        The paginator says, where it can (``following``: an offset with a total, page
        numbers with a page count); None keeps the stream's pages sequential (next-page
        URLs, tokens, cursors, "has more" flags: each needs the reply before it).
        """
        following = getattr(paginator, "following", None)
        return following(response) if following is not None else None

    #: Whether the stream's first request can be built before its sync begins (not for
    #: date windows: they end at the moment the stream's own read begins).
    first_request_known_ahead: t.ClassVar[bool] = True

    def first_request_ahead(self) -> requests.PreparedRequest | None:
        """The stream's first request, built now, while an earlier stream is read.

        None for a stream whose first request depends on more than its own state and
        settings (a child's parent record, date windows, partitions).
        """
        if (
            not self.first_request_known_ahead
            or self.parent_stream_type is not None
            or self.partitions is not None
        ):
            return None
        return self.request_ahead(None, self.get_new_paginator().current_value)

    def plan_ahead(self) -> t.Iterable[tuple[Context | None, t.Any]] | None:
        """Requests to fetch ahead of this stream's read where its first one is not known.

        ``(context, token)`` pairs, each built by :meth:`request_ahead` when it is sent;
        None (the default) for a stream that offers only its first request.
        """
        return None

    def request_ahead(self, context: Context | None, token: t.Any) -> requests.PreparedRequest:
        """A request of this stream built before its sync begins, as it will be then.

        What the sync changes before the stream's first request is its starting
        replication value, written into the state as the stream's sync begins. It is
        written here too, the request built, and the tap's state put back as it was,
        in place and in its key order, before any other message can be written: a
        STATE message of the stream being read meanwhile is unchanged.
        """
        with self.as_its_sync_begins(context):
            return self._prepare_request(context=context, page=prefetch.At(token))

    @contextlib.contextmanager
    def as_its_sync_begins(self, context: Context | None) -> t.Iterator[None]:
        """The tap's state, for the block, as this stream's sync writes it as it begins.

        Put back as it was afterwards (see :meth:`request_ahead`). The SDK logs
        "Starting incremental sync of ... with bookmark value" as it writes the value:
        said here, before the stream begins and once per request built ahead, it would
        tell what is not happening, so it is not said.
        """
        state = self._tap.state
        saved = copy.deepcopy(state)
        manager = self.state_manager
        logger = getattr(manager, "_logger", None)
        try:
            if logger is not None:
                manager._logger = _UNHEARD  # main thread only, as the state manager is
            try:
                self._write_starting_replication_value(context)
            finally:
                if logger is not None:
                    manager._logger = logger
            yield
        finally:
            restore_state(state, saved)

    def _children_to_feed(self) -> list[CollectionStream]:
        """The child streams that will be synced, each with a lane to fetch ahead in."""
        return [
            child
            for child in self.child_streams
            if (child.selected or child.has_selected_descendents)
            and isinstance(child, CollectionStream)
            and child._prefetch_lane is not None
        ]

    def _feed_children(
        self, children: list[CollectionStream], records: list[dict], context: Context | None
    ) -> None:
        """Plan each child's first request for every record of this page.

        The SDK syncs a child once per parent record, after the record; its request
        depends only on the child context, which the record gives now.
        """
        contexts = [
            child_context
            for record in records
            for child_context in self.generate_child_contexts(record=record, context=context)
            if child_context is not None
        ]
        if not contexts:
            return
        for child in children:
            start = child.get_new_paginator().current_value
            lane = child._prefetch_lane
            assert lane is not None
            lane.plan(object(), [(dict(c), start) for c in contexts], cap=lane.depth, front=False)

    def request_decorator(self, func: t.Callable) -> t.Callable:
        """Retry per :class:`RetryPolicy`; turn what is left into one true APIError.

        The error counts the attempts really made: a request that failed in a way no
        retry mends (too many redirects, a URL requests refuses, a header that cannot
        be encoded) was tried once and is told so, not as "failed after 4 attempts".
        """
        policy = self.retry_policy

        def send(prepared: requests.PreparedRequest, context: Context | None) -> requests.Response:
            label = request_label(prepared.method, prepared.url)
            attempts = 0

            def attempt() -> requests.Response:
                nonlocal attempts
                attempts += 1
                return func(prepared, context)

            prefix = f"{self.tap_name} stream '{self.name}': {label}"
            try:
                return call_with_retries(attempt, policy, logger=self.logger, what=label)
            except RetryableResponseError as error:
                raise self._api_error(error.response, label, attempts_text(attempts)) from None
            except requests.exceptions.RequestException as error:
                if isinstance(error, TRANSIENT_ERRORS):
                    tried = attempts_text(attempts)
                    msg = f"{prefix} failed{' ' + tried if tried else ''}: "
                    msg += f"{describe_transient(error)}."
                else:  # not worth a retry: the same request fails the same way
                    msg = f"{prefix} failed: {describe_request_error(error)}"
                raise APIError(msg) from None
            except UnicodeEncodeError:
                msg = (
                    f"{prefix} could not be sent: a header value has characters HTTP "
                    f"headers cannot carry (outside Latin-1). {self.auth_hint}"
                )
                raise APIError(msg) from None

        return send

    def _send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """One attempt: an in-flight slot first (when overlapping), then the budget's.

        In that order, a request leaves as soon as its budget slot comes, never later
        and bunched with others that waited for a slot: the budget's spacing holds.
        """
        pool = self._tap.prefetch_pool
        with pool.in_flight if pool is not None else contextlib.nullcontext():
            self._tap.budget.acquire()  # every attempt is a request the API counts
            with refusal_is_final(self.tap_name, self.name, prepared):
                return self.requests_session.send(
                    self.authenticator(prepared),
                    timeout=self.timeout,
                    allow_redirects=self.allow_redirects,
                )

    @cached_property
    def _log_each_request(self) -> bool:
        """A METRIC line a request only when debugging: at INFO it is noise and cost."""
        return self.logger.isEnabledFor(logging.DEBUG)

    def _request(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        """Send once; a 401 to an OAuth token renews the token and replays, once a request.

        The replay is counted on the prepared request, which every retry of it
        resends: a request that got its new token and then a 401 again, on the
        replay or on a later retry, fails for good instead of fetching a token an
        attempt. The refused token is named to ``invalidate``, so requests that saw
        the same expiry share one new token.
        """
        response = self._send(prepared_request)
        auth = self.authenticator
        if response.status_code == 401 and hasattr(auth, "invalidate"):
            label = request_label(prepared_request.method, prepared_request.url)
            if getattr(prepared_request, "_token_renewed", False):
                raise self._api_error(response, label, "to a renewed access token")
            self.logger.info("Stream %s: access token refused (401); renewing it once", self.name)
            prepared_request._token_renewed = True  # type: ignore[attr-defined]
            auth.invalidate(bearer_token(prepared_request))
            response = self._send(prepared_request)
            if response.status_code == 401:
                raise self._api_error(response, label, "to a renewed access token")
        if self._log_each_request:
            self._write_request_duration_log(
                endpoint=self.path, response=response, context=context, extra_tags=None
            )
        self.validate_response(response)
        return response

    def validate_response(self, response: requests.Response) -> None:
        """Sort a response into retryable, fatal or good, parsing its body once."""
        status = response.status_code
        label = request_label(response.request.method, response.url)
        cause = self.permanent_cause(response) if status >= 400 else None
        if status in self.retry_statuses and cause is None:
            text = api_error_text(response.content)
            raise RetryableResponseError(
                response, status_text(status) + (f": {text}" if text else "")
            )
        if status >= 400:
            error = self._api_error(response, label)
            error.cause = cause
            raise error
        try:
            self.body(response)
        except msgspec.DecodeError:
            raise RetryableResponseError(response, "response body is not valid JSON") from None
        self.check_body(response)

    #: Error names (the body's ``name`` or ``error``) that make even a retryable status
    #: final: the request itself is wrong (``INVALID_REQUEST``) or must change
    #: (``RESULTSET_TOO_LARGE``), so asking again unchanged gets the same answer.
    permanent_error_names: t.ClassVar[frozenset[str]] = frozenset()

    def permanent_cause(self, response: requests.Response) -> str | None:
        """The declared permanent error name an error body carries, if any."""
        if not self.permanent_error_names:
            return None
        try:
            body = decode_json(response.content)
        except msgspec.DecodeError:
            return None
        if not isinstance(body, dict):
            return None
        for key in ("name", "error"):
            if body.get(key) in self.permanent_error_names:
                return str(body[key])
        return None

    def _api_error(self, response: requests.Response, label: str, attempts: str = "") -> APIError:
        status = response.status_code
        if status < 300:
            detail, text = f"{status} with a body that is not valid JSON", ""
        else:
            detail, text = status_text(status), api_error_text(response.content)
        hint = f" {self.auth_hint}" if status in (401, 403) else ""
        msg = (
            f"{self.tap_name} stream '{self.name}': {label} answered {detail}"
            f"{' ' + attempts if attempts else ''}{': ' + text if text else ''}.{hint}"
        )
        return APIError(msg, status=status)


def restore_state(target: dict, saved: dict) -> None:
    """Make ``target`` equal ``saved`` again, keeping its dicts and its keys' order.

    Keys added since are removed (those present keep their place), values changed are
    put back, and nested dicts present in both are restored in place: the SDK holds
    references to them (a stream's state is a dict inside the tap's).
    """
    for key in [key for key in target if key not in saved]:
        del target[key]
    for key, value in saved.items():
        current = target.get(key, _MISSING)
        if isinstance(current, dict) and isinstance(value, dict):
            restore_state(current, value)
        elif current is _MISSING or current != value:
            target[key] = value


_MISSING = object()
#: A logger that says nothing (see ``CollectionStream.as_its_sync_begins``).
_UNHEARD = logging.Logger("taps_core.unheard")
_UNHEARD.disabled = True
_ONLY_STR = {str}
#: Connections requests keeps alive a host by default.
_POOL_CONNECTIONS = 10
