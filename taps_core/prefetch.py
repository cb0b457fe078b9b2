"""Overlapped requests: workers fetch ahead, the main thread writes exactly as before.

A Singer tap on the SDK sends one request at a time, so a sync of 2,000 pages at
100 ms waits more than three minutes on the network. Here worker threads send the
requests a stream will certainly make next, while the main thread goes on as the
sequential sync does: it builds each request from the real paginator, takes the reply
and writes the records, stream after stream, page after page.

The two meet at one point, :meth:`Lane.take`. The main thread hands it the request
it is about to send; a request fetched ahead that is the same request (method, URL
and body; the token is applied as it leaves) is waited for and its reply used,
anything else is sent as it is now. So a guess can cost at most a wasted request,
never a wrong page: the replies the main thread reads are the replies to the
requests the sequential sync sends, in its order, and its output is the same.

What is fetched ahead is what is known without the current reply (see
``CollectionStream.planned_tokens``): the later pages of a list whose first reply
states its size (an offset with a total, page numbers with ``total_pages``), the
first page of every date window, one request per parent record for a child stream.
Where the next request needs the current reply (next-page URLs, tokens, cursors,
``has_more_page``) nothing is guessed and the stream's pages stay sequential, one in
flight at a time: a :class:`Chain` sends each as soon as the reply before it is in,
from the main thread's copy of the paginator, rather than once the reader has written
the records before it. Every stream still to come is walked that way too, a few pages
deep, while the streams before it are read, and a date-window stream offers the first
pages of the windows already known (``CollectionTap.prefetch_upcoming``). Workers take
the work of the stream being read first, then that of the next stream, and so on
(:attr:`Job.priority`).

Nothing is fetched ahead while the API answers in under 10 ms on average
(:attr:`Pool.WORTH_FETCHING_AHEAD`): a reply handed from a worker to the main thread
costs the GIL changing hands, more than such a request takes the reader itself.

Bounds: :class:`Pool` runs ``max_concurrent_requests`` daemon workers and holds at
most six times that many replies fetched and not yet taken, over all streams, of which
the streams still to come hold at most two thirds (the rest is the stream being read's,
which would otherwise wait behind replies no one can take before it ends); one lane (a
stream's) at most twice ``max_concurrent_requests`` in flight or fetched while its stream
is read (so that replies waiting for the reader keep no worker idle), as many as
``max_concurrent_requests`` before, except that a stream to come with requests of its
own to fetch (date windows) gives workers that would idle more of them
(:meth:`Lane.fill_idle`). Every request, the main thread's
too, takes one of ``max_concurrent_requests`` in-flight slots before its budget slot
(:class:`taps_core.budget.RequestBudget`), so no more are ever in flight and requests
leave at the budget's pace, never bunched after a wait. A lane's unused work is
cancelled when its stream ends; a worker's failure is raised on the main thread,
where the sequential sync would have met it, with the same exception.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import sys
import threading
import time
import typing as t
from collections import deque

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import requests

Send = t.Callable[["requests.PreparedRequest", t.Any], "requests.Response"]
#: Requests alike for the API: the Authorization header is applied as a request leaves.
Key = tuple[str, str, bytes]

#: How long the main thread waits on a reply at a time: short enough for a signal's
#: handler (SIGTERM's safe stop) to run between waits on any platform.
_WAIT_STEP = 0.25
#: How many requests the reader took a lane remembers (see ``Lane._sent``).
_SENT_KEPT = 4096


def request_key(prepared: requests.PreparedRequest) -> Key:
    """What makes two prepared requests the same request to the API."""
    body = prepared.body
    if isinstance(body, str):
        body = body.encode()
    return (str(prepared.method), str(prepared.url), body or b"")


class At:
    """Stands in for a paginator whose ``current_value`` is a planned token."""

    __slots__ = ("current_value",)

    def __init__(self, token: t.Any) -> None:
        self.current_value = token


class Job:
    """One request fetched ahead: run once by a worker, taken once by the main thread."""

    __slots__ = (
        "_release",
        "cancelled",
        "context",
        "done",
        "error",
        "group",
        "prepared",
        "priority",
        "result",
    )

    def __init__(
        self,
        prepared: requests.PreparedRequest,
        context: t.Any,
        group: object,
        priority: int = 0,
    ) -> None:
        self.prepared = prepared
        self.context = context
        self.group = group
        #: Workers take the lowest first: 0 for the stream being read (and its children),
        #: then the streams to come, in the order they will be read.
        self.priority = priority
        self.done = threading.Event()
        self.result: requests.Response | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self._release: Callable[[], None] | None = None

    def run(self, send: Send, pool: Pool) -> None:
        began = time.monotonic()
        try:
            if not self.cancelled:
                self.result = send(self.prepared, self.context)
                pool.timed(time.monotonic() - began)
        except BaseException as error:  # handed to the main thread, which raises it
            self.error = error
        finally:
            self.done.set()
            pool.wake.set()

    def wait(self, pool: Pool) -> requests.Response:
        """The reply, or the worker's exception raised here, on the main thread.

        While it waits, the main thread moves the chains on (:meth:`Pool.pump`): a
        reply another chain was waiting for gives that chain its next request now.
        """
        while not self.done.is_set():
            pool.wake.clear()
            pool.pump()
            if self.done.is_set():
                break
            pool.wake.wait(_WAIT_STEP)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        assert self.result is not None
        return self.result

    def release(self) -> None:
        """Give back the job's buffer slot, once."""
        release, self._release = self._release, None
        if release is not None:
            release()


class Pool:
    """The tap's workers, its in-flight slots and its buffer of replies not yet taken."""

    def __init__(self, workers: int, *, buffered: int | None = None) -> None:
        self.workers = workers
        #: Taken around every request sent, workers' and the main thread's alike.
        self.in_flight = threading.BoundedSemaphore(workers)
        total = buffered or 6 * workers
        self._buffer = threading.BoundedSemaphore(total)
        #: The share of the buffer the streams still to come may hold: the rest is kept
        #: for the stream being read, which would otherwise wait behind replies that
        #: cannot be taken before it ends.
        self.upcoming_share = max(total * 2 // 3, 1)
        #: Slots of that share held (main thread only: jobs are submitted and released
        #: there).
        self.upcoming_held = 0
        self._queue: queue.PriorityQueue[tuple[int, int, Job | None, Send | None]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        #: Set by a worker as a job ends: the main thread's cue to move the chains on.
        self.wake = threading.Event()
        #: Lanes with chains to move on (main thread only).
        self.chained: list[Lane] = []
        #: Lanes of streams to come that take idle workers beyond their depth (main
        #: thread only; see :meth:`Lane.fill_idle`).
        self.idle_fillers: list[Lane] = []
        self._running = 0  # jobs a worker has begun and not finished
        #: A lane's depth while its stream is read (see ``Lane.depth``).
        self.reading_depth = 2 * workers

    #: A reply quicker than this on average is not worth fetching ahead: handing it
    #: from a worker to the main thread costs more (the GIL changes hands, at worst
    #: every 5 ms switch interval), and the reader would rather send it itself.
    WORTH_FETCHING_AHEAD = 0.010
    _round_trip: float | None = None

    def timed(self, seconds: float) -> None:
        """Count one request's round trip into the running average (any thread)."""
        average = self._round_trip
        self._round_trip = seconds if average is None else 0.8 * average + 0.2 * seconds

    @property
    def worth_it(self) -> bool:
        """Whether the API's replies are slow enough to be worth fetching ahead."""
        average = self._round_trip
        return average is None or average >= self.WORTH_FETCHING_AHEAD

    def pump(self) -> None:
        """Move every chain on whose last reply has come, then give idle workers the
        planned work of streams to come (main thread only)."""
        for lane in list(self.chained):
            lane.pump()
        for lane in list(self.idle_fillers):
            lane.fill_idle()

    def idle_workers(self) -> int:
        """Workers with nothing to do: none begun, none queued for them."""
        return self.workers - self._running - self._queue.qsize()

    def submit(self, job: Job, send: Send, *, upcoming: bool = False) -> bool:
        """Queue ``job``, unless the buffer is full (the caller keeps it for later).

        ``upcoming``: the job is of a stream not yet being read; it takes a slot of
        that share of the buffer too.
        """
        if upcoming and self.upcoming_held >= self.upcoming_share:
            return False
        if not self._buffer.acquire(blocking=False):
            return False
        if upcoming:
            self.upcoming_held += 1
        job._release = self._releaser(upcoming=upcoming)
        self._start_workers()
        self._queue.put((job.priority, next(self._order), job, send))
        return True

    def _releaser(self, *, upcoming: bool) -> Callable[[], None]:
        if not upcoming:
            return self._buffer.release

        def release() -> None:
            self._buffer.release()
            self.upcoming_held -= 1

        return release

    def _start_workers(self) -> None:
        if len(self._threads) == self.workers:
            return
        with self._lock:
            while len(self._threads) < self.workers:
                # Daemon threads: a sync that fails or is stopped ends at once, whatever
                # a worker is waiting for (a reply, a retry's backoff, a budget slot).
                thread = threading.Thread(
                    target=self._work, name=f"prefetch-{len(self._threads) + 1}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def close(self) -> None:
        """The sync is over (done, failed or stopped): nothing queued is sent, workers end.

        Otherwise a sync run in-process (an orchestrator's, a test's) leaves its workers
        waiting for jobs forever, and after a failure they go on sending what the streams
        to come had queued, requests the sequential sync never sends. A job being sent
        ends as it would; its worker ends after it.
        """
        while True:
            try:
                _, _, job, _ = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:  # not the cue of an earlier close
                job.cancelled = True
                job.done.set()
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:  # one cue a worker, taken after any job queued later
            self._queue.put((_LAST, next(self._order), None, None))

    def _work(self) -> None:
        while True:
            _, _, job, send = self._queue.get()
            if job is None:  # the pool is closed
                return
            with self._lock:
                self._running += 1
            try:
                job.run(send, self)
            finally:
                with self._lock:
                    self._running -= 1
            del job, send


class Lane:
    """One stream's requests fetched ahead, and its plan of requests to fetch next.

    Used by the main thread only (workers see :class:`Job` objects, nothing else).
    A plan is an iterator of ``(context, token)``, tagged with a group (one call of
    ``request_records``, or the windows of a stream, or a parent's children): a newer
    plan of a group replaces the older one, and a group's leftovers are dropped when
    it ends. Plans are drawn front first: a list's pages before the next window.
    """

    def __init__(self, stream: t.Any, pool: Pool, send: Send) -> None:
        self._stream = stream
        self._pool = pool
        self._send = send
        #: The most requests of the lane in flight or fetched and not yet read: twice
        #: the workers, so that replies waiting for the reader do not keep workers
        #: idle; a stream still to come, whose replies cannot be read yet, holds fewer.
        self.depth = pool.reading_depth
        self._jobs: dict[Key, Job] = {}
        #: [group, iterator, most jobs of the group at once, how each request is
        #: built], front first.
        self._plans: deque[list[t.Any]] = deque()
        #: Requests the reader has taken lately (the hash of each key, oldest first): a
        #: plan that lags behind it must not send them a second time. A plan lags by
        #: less than this: it never waits while the reader goes on (one is dropped
        #: where fetching ahead is not worth it, see :meth:`_fill`). A hash that two keys
        #: share only leaves a request to the reader, never sends one twice.
        self._sent: dict[int, None] = {}
        self._chains: list[Chain] = []
        self.users = 0
        #: 0 while the stream is read (or fed, for a child); before that, its place
        #: among the streams to come (1: the next), so workers fetch what is wanted first.
        self.priority = 0
        #: Whether the reader had to wait for the last reply it took fetched ahead.
        self.waited = False

    @property
    def width(self) -> int:
        """How many requests can be in flight at once (the pool's workers)."""
        return self._pool.workers

    def plan(
        self,
        group: object,
        items: Iterable[tuple[t.Any, t.Any]],
        *,
        cap: int | None = None,
        front: bool = True,
        prepare: Callable[[t.Any, t.Any], requests.PreparedRequest] | None = None,
    ) -> None:
        """Fetch these ``(context, token)`` requests ahead, ``cap`` of them at a time.

        A group's newer plan replaces its older one, keeping its cap unless given.
        ``prepare`` builds each request (default: the stream's own, as it reads).
        """
        kept = [entry for entry in self._plans if entry[0] is group]
        self._plans = deque(entry for entry in self._plans if entry[0] is not group)
        if cap is None:
            cap = kept[0][2] if kept else 1
        entry = [group, iter(items), min(cap, self.depth), prepare or self._prepare]
        if front:
            self._plans.appendleft(entry)
        else:
            self._plans.append(entry)
        self.fill()

    def widen(self, group: object) -> None:
        """The group's last page read true: fetch further ahead, up to the depth.

        A list's plan starts one page ahead of the reader, goes two ahead once a page
        brought new records, and as deep as the lane once a second one has: a list
        that only pretends to page (it serves the same rows at every offset, or cycles
        through two pages, and the repeat guard ends it on its second or third page)
        costs at most two requests more overlapped than sequential, and a true list
        is read at full depth from its fourth page. The reader calls it only when it
        had to wait for that page: where replies are in before the reader wants them
        (a fast API), more threads would only contend with it for the interpreter.
        """
        for entry in self._plans:
            if entry[0] is group:
                entry[2] = 2 if entry[2] < 2 else self.depth
        self.fill()

    def fill(self) -> None:
        """Start planned requests until the lane or the pool's buffer is full."""
        self._pool.pump()
        self._fill(self.depth)

    def fill_idle(self) -> None:
        """A stream to come: give workers that would idle its planned requests.

        Beyond its depth, up to the share of the buffer the streams to come hold, but
        only while workers have nothing else to do and a few slots of that share stay
        free for the others: work queued in advance would be taken before the next
        page of a list walked ahead, which can be asked for only once its reply is in.
        """
        pool = self._pool
        if self.priority == 0:
            return
        self._fill(
            pool.upcoming_share,
            more=lambda: (
                pool.idle_workers() > 0
                and pool.upcoming_share - pool.upcoming_held > pool.workers // 2
            ),
        )

    def _fill(self, most: int, more: Callable[[], bool] | None = None) -> None:
        """Start planned requests while the lane holds fewer than ``most``; ``more``:
        beyond each plan's cap, while it says so."""
        if not self._pool.worth_it:
            # Dropped, not kept waiting: the reader goes on meanwhile, and a plan that
            # resumed once the API slows would ask again what the reader took since
            # (and, a parent's pages feeding plans, pile them up). Lists and parents
            # plan again from their next replies, should fetching ahead pay by then.
            self._plans.clear()
            return
        while self._plans and len(self._jobs) < most and (more is None or more()):
            for entry in self._plans:
                group, items, cap, prepare = entry
                if more is not None or sum(job.group is group for job in self._jobs.values()) < cap:
                    break
            else:
                return  # every plan has its share in flight
            item = next(items, _END)
            if item is _END:
                self._plans.remove(entry)
                continue
            context, token = item
            prepared = prepare(context, token)
            key = request_key(prepared)
            if key in self._jobs or hash(key) in self._sent:
                continue
            job = Job(prepared, context, group, self.priority)
            if not self._pool.submit(job, self._send, upcoming=self.priority > 0):
                entry[1] = itertools.chain([item], items)  # no room: this one first, later
                return
            self._jobs[key] = job

    def chain(
        self,
        group: object,
        context: t.Any,
        paginator: t.Any,
        *,
        first: requests.PreparedRequest | None = None,
        prepare: Callable[[t.Any, t.Any], requests.PreparedRequest] | None = None,
        ahead: int = 2,
    ) -> None:
        """Walk a list whose next request needs the reply before it, ahead of the reader.

        ``paginator`` is the lane's own copy, at the next page to fetch: each reply
        advances it (on the main thread, as the reader's would be) to the request after.
        At most ``ahead`` replies of the chain wait to be read. ``first``: that page's
        request, built already; ``prepare`` builds the others (default: the stream's).
        """
        self.unchain(group)
        if paginator.finished:
            return
        self._chains.append(
            Chain(group, context, paginator, first, prepare or self._prepare, ahead)
        )
        if self not in self._pool.chained:
            self._pool.chained.append(self)
        self.pump()

    def unchain(self, group: object) -> None:
        """Stop a group's chain; what it fetched stays to be taken."""
        self._chains = [chain for chain in self._chains if chain.group is not group]
        if not self._chains and self in self._pool.chained:
            self._pool.chained.remove(self)

    def begin(self, offered_by: object) -> None:
        """The stream's read begins: what was offered ahead of it stops, its replies stay.

        Its own read plans and walks from here, from the requests it really builds;
        left running, the offer's plan could fetch again a page already taken.
        """
        self.priority = 0
        self.depth = self._pool.reading_depth
        if self in self._pool.idle_fillers:
            self._pool.idle_fillers.remove(self)
        self.unchain(offered_by)
        self._plans = deque(entry for entry in self._plans if entry[0] is not offered_by)

    def _prepare(self, context: t.Any, token: t.Any) -> requests.PreparedRequest:
        return self._stream._prepare_request(context=context, page=At(token))

    def pump(self) -> None:
        """Move each chain on: the next request once the last reply is in (main thread)."""
        for chain in list(self._chains):
            while self._step(chain):
                pass

    def _step(self, chain: Chain) -> bool:
        """One move of ``chain``; whether it can move again at once."""
        job = chain.job
        if job is not None:
            if not job.done.is_set():
                return False
            if job.error is not None or job.result is None or job.cancelled:
                self._drop_chain(chain)
                return False
            response = job.result
            chain.job = None
            try:  # the reader's own loop, minus the records: pure functions of the reply
                rows = self._stream.rows(response)
                if not rows and not chain.paginator.continue_if_empty(response):
                    self._drop_chain(chain)
                    return False
                chain.paginator.advance(response)
            except Exception:  # the reader meets it itself, where it would
                self._drop_chain(chain)
                return False
            if chain.paginator.finished:
                self._drop_chain(chain)
                return False
            chain.first = None
        waiting = sum(1 for j in self._jobs.values() if j.group is chain.group)
        if waiting >= chain.ahead or len(self._jobs) >= self.depth or not self._pool.worth_it:
            return False
        try:
            prepared = chain.first or chain.prepare(chain.context, chain.paginator.current_value)
        except Exception:
            self._drop_chain(chain)
            return False
        key = request_key(prepared)
        if hash(key) in self._sent:  # the reader is past it: nothing ahead to fetch
            self._drop_chain(chain)
            return False
        job = self._jobs.get(key)
        if job is None:
            job = Job(prepared, chain.context, chain.group, self.priority)
            if not self._pool.submit(job, self._send, upcoming=self.priority > 0):
                return False  # no room now: tried again at the next pump
            self._jobs[key] = job
        chain.job = job
        return job.done.is_set()

    def _drop_chain(self, chain: Chain) -> None:
        if chain in self._chains:
            self._chains.remove(chain)
        if not self._chains and self in self._pool.chained:
            self._pool.chained.remove(self)

    def take(
        self, prepared: requests.PreparedRequest, context: t.Any, send: Send
    ) -> tuple[requests.Response, bool]:
        """The reply to ``prepared``: fetched ahead if it was, else sent now.

        The second value says whether it had been fetched ahead.
        """
        key = request_key(prepared)
        job = self._jobs.pop(key, None)
        self._remember_taken(key)
        if job is None:
            began = time.monotonic()
            response = send(prepared, context)
            self._pool.timed(time.monotonic() - began)
            return response, False
        self.waited = not job.done.is_set()
        try:
            return job.wait(self._pool), True
        finally:
            job.release()  # the lane refills once the reader has read the page (widen)

    def _remember_taken(self, key: Key) -> None:
        """Read: no plan that lags behind fetches it again (the latest :data:`_SENT_KEPT`)."""
        sent = self._sent
        sent[hash(key)] = None
        if len(sent) > _SENT_KEPT:
            del sent[next(iter(sent))]

    def end(self, group: object) -> None:
        """Drop what is left of ``group``: its plan, and replies nobody will take."""
        self.unchain(group)
        self._plans = deque(entry for entry in self._plans if entry[0] is not group)
        for key in [key for key, job in self._jobs.items() if job.group is group]:
            self._discard(self._jobs.pop(key))
        self.fill()

    def close(self) -> None:
        """The stream is done (or failed): cancel everything not taken."""
        self._plans.clear()
        self._chains.clear()
        if self in self._pool.chained:
            self._pool.chained.remove(self)
        if self in self._pool.idle_fillers:
            self._pool.idle_fillers.remove(self)
        jobs, self._jobs = self._jobs, {}
        for job in jobs.values():
            self._discard(job)

    @staticmethod
    def _discard(job: Job) -> None:
        job.cancelled = True  # a worker that has not begun it sends nothing
        job.release()


_END = object()
#: The priority of a worker's cue to end: after every job.
_LAST = sys.maxsize


class Chain:
    """A list walked ahead page by page (see :meth:`Lane.chain`)."""

    __slots__ = ("ahead", "context", "first", "group", "job", "paginator", "prepare")

    def __init__(
        self,
        group: object,
        context: t.Any,
        paginator: t.Any,
        first: requests.PreparedRequest | None,
        prepare: Callable[[t.Any, t.Any], requests.PreparedRequest],
        ahead: int,
    ) -> None:
        self.group = group
        self.context = context
        self.paginator = paginator
        self.first = first
        self.prepare = prepare
        self.ahead = ahead
        self.job: Job | None = None


@contextlib.contextmanager
def lane_in_use(stream: t.Any) -> Iterator[Lane | None]:
    """The stream's lane while it reads; closed when its outermost read ends.

    A child stream's lane is fed by its parent and outlives each of the child's reads
    (one per parent record): the parent's outermost read closes it.
    """
    lane = stream._prefetch_lane
    if lane is None:
        yield None
        return
    if lane.users == 0 and stream.parent_stream_type is None:
        lane.begin(stream._tap)  # its own read plans and walks on from here
    lane.users += 1
    try:
        yield lane
    finally:
        lane.users -= 1
        if lane.users == 0 and stream.parent_stream_type is None:
            close_lanes(stream)


def close_lanes(stream: t.Any) -> None:
    """Close the lanes of ``stream`` and of its child streams, depth first."""
    for child in getattr(stream, "child_streams", ()):
        close_lanes(child)
    lane = stream.__dict__.get("_prefetch_lane")
    if lane is not None:
        lane.close()
