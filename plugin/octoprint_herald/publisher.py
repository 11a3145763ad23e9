"""The worker thread that talks to Herald: drains the event outbox, then pushes the status.

OctoPrint's threads only call ``enqueue_event`` (a small durable file write) and
``request_status`` (a flag); every network call happens here, with timeouts.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .client import HeraldClient, HeraldError
from .mapping import new_event_id, now_iso
from .outbox import Outbox
from .thumbnails import embedded_thumbnail

ACTIVE_STATES = {"printing", "pausing", "paused", "resuming", "cancelling", "finishing"}
NOT_CONFIGURED_WAIT = 3600.0
UNSAVED_KEPT = 5000  # events kept in memory while the disk refuses them
#: The largest webcam snapshot sent every so often while printing (opt-in).
WEBCAM_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff, capped, with jitter that only ever shortens the wait."""

    base: float = 2.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.25

    def next_delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th consecutive failure (1, 2, ...)."""
        raw = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        fraction = random.random() if rand is None else rand
        return raw * (1.0 - self.jitter * fraction)


@dataclass(frozen=True)
class Intervals:
    printing: float = 30.0
    idle: float = 60.0


class Publisher:
    def __init__(self, outbox: Outbox, status_provider: Callable[[], dict], *,
                 policy: RetryPolicy | None = None,
                 intervals: Callable[[], Intervals] = Intervals,
                 snapshot_url: Callable[[], str | None] = lambda: None,
                 webcam_every: Callable[[], float] = lambda: 0.0,
                 on_change: Callable[[dict], None] = lambda state: None,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None) -> None:
        self.outbox = outbox
        self._status_provider = status_provider
        self.policy = policy or RetryPolicy()
        self._intervals = intervals
        self._snapshot_url = snapshot_url
        # Pictures for Herald's card: the job's thumbnail once per job, and (opt-in) a webcam
        # snapshot every ``webcam_every()`` seconds while a job runs.
        self._webcam_every = webcam_every
        self._thumbnail: tuple[str | None, str] | None = None  # (job file, G-code path on disk)
        self._next_webcam_at = 0.0
        self._on_change = on_change
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        self._client: HeraldClient | None = None
        # The client whose key was last verified: a new client (start, relink) verifies once
        # first, which tells Herald this plugin's version (its printer page shows it).
        self._verified: HeraldClient | None = None
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._status_requested = True
        self._last_status: dict | None = None
        self._last_status_at: float | None = None
        self.attempts = 0
        self.retry_at = 0.0
        self.needs_relink = False
        self.last_success: str | None = None
        self.last_error: str | None = None
        self.events_sent = 0
        self.disk_error: str | None = None
        self._unsaved: list[dict] = []
        self._unsaved_lock = threading.Lock()
        self.statuses_sent = 0
        self._goodbye = False

    # -- called from OctoPrint's threads ----------------------------------------------
    def configure(self, client: HeraldClient | None) -> None:
        """A new address or key: start afresh (a relink clears the 'needs relink' state)."""
        with self._cond:
            self._client = client
            self.needs_relink = False
            self.attempts = 0
            self.retry_at = 0.0
            self.last_error = None
            self._last_status = None
            self._status_requested = True
        self._changed()
        self.wake()

    @property
    def linked(self) -> bool:
        return self._client is not None and bool(self._client.key)

    @property
    def accepting(self) -> bool:
        """Whether new events are queued (not when unlinked or after Herald refused the key)."""
        return self.linked and not self.needs_relink

    def enqueue_event(self, event_type: str, payload: dict, printer_data: dict, *,
                      snapshot: bool = False, occurred_at: str | None = None) -> str | None:
        """Store one event durably (on the caller's thread: the plugin's intake thread)."""
        ids = self.enqueue_events([(event_type, payload, printer_data, snapshot, occurred_at)])
        return ids[0] if ids else None

    def enqueue_events(self, events: list[tuple[str, dict, dict, bool, str | None]]) -> list[str]:
        """Store events as one batch (one fsync); ``(type, payload, printer_data, snapshot, occurred_at)``.

        Called by the plugin's intake thread, never by one of OctoPrint's: it writes to disk.
        """
        if not self.accepting or not events:
            return []
        records = []
        for event_type, payload, printer_data, snapshot, occurred_at in events:
            event = {"id": new_event_id(), "type": event_type, "occurred_at": occurred_at or now_iso(),
                     "payload": payload, "printer_data": printer_data}
            records.append({"event": event, "snapshot": bool(snapshot)})
        self.store(records)
        self.wake()
        return [record["event"]["id"] for record in records]

    def store(self, records: list[dict] | None = None) -> bool:
        """Write records (and any a failing disk left in memory) to the outbox; False if not yet.

        A full or failing disk must not lose events nor stop the status: what could not be
        written waits in memory (bounded) and is written at the next try, and the settings
        page and the log say why.
        """
        with self._unsaved_lock:
            batch, self._unsaved = self._unsaved + list(records or []), []
        if not batch:
            return True
        try:
            self.outbox.put_many(batch)
        except OSError as exc:
            with self._unsaved_lock:
                self._unsaved = (batch + self._unsaved)[-UNSAVED_KEPT:]
                waiting = len(self._unsaved)
            self.disk_error = (f"Could not store events on OctoPrint's disk ({exc.strerror or exc}); "
                               f"{waiting} event(s) wait in memory until there is room.")
            self._log.error("Herald: %s", self.disk_error)
            self._changed()
            return False
        if self.disk_error:
            self._log.info("Herald: the outbox is written again (%d event(s) stored)", len(batch))
            self.disk_error = None
            self._changed()
        return True

    def request_thumbnail(self, job_file: str | None, path: str) -> None:
        """A job started: send the preview embedded in its G-code (read on the worker thread)."""
        with self._cond:
            self._thumbnail = (job_file, path)
        self.wake()

    def request_status(self) -> None:
        self._status_requested = True
        self.wake()

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def state(self) -> dict:
        now = self._clock()
        return {
            "linked": self.linked,
            "needs_relink": self.needs_relink,
            "publishing": self.accepting and self.attempts == 0,
            "last_success": self.last_success,
            "last_error": self.disk_error or self.last_error,
            "queued_events": len(self.outbox) + len(self._unsaved),
            "retry_in": round(self.retry_at - now, 1) if self.attempts and self.retry_at > now else None,
        }

    # -- the thread -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="herald-publisher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 20.0, *, goodbye: bool = False) -> None:
        """Stop the thread; with ``goodbye``, it first tells Herald that OctoPrint is stopping."""
        self._goodbye = goodbye
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self.step()
            except Exception:  # never let the worker die: log and try again later
                self._log.exception("Herald publisher pass failed")
                delay = 10.0
            with self._cond:
                if not self._woken and not self._stopping.is_set():
                    self._cond.wait(max(0.05, delay))
                self._woken = False
        if self._goodbye:
            self._say_goodbye()

    def _say_goodbye(self) -> None:
        client = self._client
        if client is None or not client.key or not client.base_url or self.needs_relink:
            return
        try:
            client.goodbye()
            self._log.info("Told Herald that OctoPrint is shutting down")
        except HeraldError as exc:
            self._log.info("Could not tell Herald that OctoPrint is shutting down: %s", exc)

    def step(self) -> float:
        """One pass: send what is due. Returns the seconds until another pass is needed."""
        client = self._client
        if client is None or not client.key or not client.base_url or self.needs_relink:
            return NOT_CONFIGURED_WAIT
        if self._unsaved:
            self.store()
        now = self._clock()
        if now < self.retry_at:
            return self.retry_at - now
        try:
            if self._verified is not client:
                client.verify_key()
                self._verified = client
            self._flush_events(client)
            self._flush_status(client, now)
            self._flush_pictures(client, now)
        except HeraldError as exc:
            return self._failed(exc)
        if self.attempts or self.last_error:
            self.attempts = 0
            self.retry_at = 0.0
            self.last_error = None
            self._changed()
        return max(0.0, min(self._next_status_due(now), self._next_webcam_due()) - self._clock())

    def _flush_events(self, client: HeraldClient) -> None:
        for name in self.outbox.names():
            if self._stopping.is_set():
                return
            records = self.outbox.read(name)
            if records is None:
                continue
            left = list(records)
            try:
                while left:
                    if self._stopping.is_set():
                        return
                    record = left[0]
                    event = record["event"]
                    snapshot = self._snapshot_for(client, name, event["id"]) if record.get("snapshot") else None
                    try:
                        client.post_event(event, snapshot)
                    except HeraldError as exc:
                        if not exc.permanent:
                            raise
                        # Herald will never take this one; set it aside so the rest can flow.
                        self._log.warning("Herald refused event %s (%s): %s",
                                          event.get("id"), event.get("type"), exc)
                        self.outbox.reject(name, record)
                        self.last_error = str(exc)
                    else:
                        self.events_sent += 1
                        self._succeeded()
                    left.pop(0)
            finally:
                if len(left) != len(records):
                    # What reached Herald leaves the file (a resend would be accepted once anyway).
                    self.outbox.replace(name, left)

    def _snapshot_for(self, client: HeraldClient, name: str, event_id: str) -> bytes | None:
        path = self.outbox.attachment_path(name, event_id)
        if os.path.exists(path):
            with open(path, "rb") as handle:
                return handle.read()
        url = self._snapshot_url()
        data = client.fetch_snapshot(url) if url else None
        if data:
            # Keep it, so a retry sends the same picture.
            with open(path, "wb") as handle:
                handle.write(data)
        return data

    def _flush_status(self, client: HeraldClient, now: float) -> None:
        heartbeat_due = now >= self._next_status_due(now, heartbeat_only=True)
        if not (self._status_requested or heartbeat_due):
            return
        self._status_requested = False
        status = self._status_provider()
        if status == self._last_status and not heartbeat_due:
            return
        try:
            client.put_status(status)
        except HeraldError:
            self._status_requested = True
            raise
        self._last_status = status
        self._last_status_at = now
        self.statuses_sent += 1
        self._succeeded()

    def _webcam_on(self) -> bool:
        return self._webcam_every() > 0 and (self._last_status or {}).get("state_id") in ACTIVE_STATES

    def _next_webcam_due(self) -> float:
        return self._next_webcam_at if self._webcam_on() else float("inf")

    def _flush_pictures(self, client: HeraldClient, now: float) -> None:
        """Pictures are a nicety: a refused or failed one is logged and dropped, never retried
        in a loop, except that a refused key stops publishing as everywhere else."""
        with self._cond:
            pending, self._thumbnail = self._thumbnail, None
        if pending is not None:
            data = embedded_thumbnail(pending[1])
            if data:
                self._send_picture(client, "thumbnail", data, pending[0])
        if self._webcam_on() and now >= self._next_webcam_at:
            self._next_webcam_at = now + self._webcam_every()
            url = self._snapshot_url()
            data = client.fetch_snapshot(url, limit=WEBCAM_LIMIT) if url else None
            if data:
                self._send_picture(client, "webcam", data, None)

    def _send_picture(self, client: HeraldClient, kind: str, data: bytes, job_file: str | None) -> None:
        try:
            client.put_picture(kind, data, job_file)
        except HeraldError as exc:
            if exc.unauthorized:
                raise
            self._log.warning("Herald did not take the %s picture: %s", kind, exc)

    def _next_status_due(self, now: float, heartbeat_only: bool = False) -> float:
        if self._status_requested and not heartbeat_only:
            return now
        if self._last_status_at is None:
            return now
        intervals = self._intervals()
        active = (self._last_status or {}).get("state_id") in ACTIVE_STATES
        return self._last_status_at + (intervals.printing if active else intervals.idle)

    def _succeeded(self) -> None:
        previous = self.last_success
        self.last_success = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if previous is None or previous[:19] != self.last_success[:19]:
            self._changed()

    def _failed(self, exc: HeraldError) -> float:
        if exc.unauthorized:
            self.needs_relink = True
            self.last_error = str(exc)
            self._log.warning("Herald refused the printer key; publishing stops until the printer is linked again")
            self._changed()
            return NOT_CONFIGURED_WAIT
        self.attempts += 1
        delay = self.policy.next_delay(self.attempts)
        if exc.retry_after is not None:
            # Herald said when (a 429 or 503 with Retry-After): that is the wait, no guessing.
            delay = min(self.policy.cap, max(0.5, exc.retry_after))
        self.retry_at = self._clock() + delay
        self.last_error = str(exc)
        self._log.info("Publishing to Herald failed (attempt %d, next in %.1f s): %s", self.attempts, delay, exc)
        self._changed()
        return delay

    def _changed(self) -> None:
        try:
            self._on_change(self.state())
        except Exception:
            self._log.exception("Could not report the publisher's state")
