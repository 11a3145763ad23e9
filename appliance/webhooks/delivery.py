"""Delivering queued webhooks: claims with leases, signing, retries, and the worker pool.

A delivery is a row. A worker claims due rows in one statement (on PostgreSQL
with ``FOR UPDATE SKIP LOCKED``, so several processes share the queue), marks
them ``in_flight`` with ``locked_until`` (its lease) and sends them; a killed
worker's rows become claimable again once the lease has passed. Per target,
only one batch is in flight at a time and it is sent in order, so a healthy
target receives its events in the order Herald accepted them. Results are
written in batches (one UPDATE for all successes of a flush) because one write
per delivery costs as much as the delivery itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from tortoise import Tortoise
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from appliance.core.db import shielded
from appliance.core.herald import Herald
from appliance.core.mail import mail_configured, send_mail
from appliance.core.runtime_settings import effective
from appliance.core.storage import DiskState, log_write_failure
from appliance.printers.models import Event
from appliance.webhooks import sql
from appliance.webhooks import templates as tpl
from appliance.webhooks.models import Delivery, DeliveryAttempt, WebhookTarget
from appliance.webhooks.outbound import BlockedAddress, numeric_host_problem, send, url_problem
from appliance.webhooks.redact import unseal
from appliance.webhooks.retry import RetryPolicy, retry_after_seconds
from appliance.webhooks.sql import CLAIMED_COLUMNS

log = logging.getLogger("appliance.webhooks")

BATCH_PER_TARGET = 50  # rows of one target claimed together and sent in order
_KEEP_ERROR = 1024


# --- signing (Standard Webhooks) ---------------------------------------------------------


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signing_secrets(herald: Herald, target: WebhookTarget, now: datetime) -> list[str]:
    keys = [herald.secret_box.decrypt(target.signing_secret)]
    if target.previous_signing_secret and target.previous_secret_expires_at and target.previous_secret_expires_at > now:
        keys.append(herald.secret_box.decrypt(target.previous_signing_secret))
    return keys


# --- encoding a frozen request ---------------------------------------------------------


def encode(*, webhook_id: str, url: str, headers: dict, body_kind: str, body: Any, snapshot_key: str,
           snapshot: bytes | None, oauth: dict[str, Any] | None) -> tuple[str, dict[str, str], bytes | None]:
    """URL, headers and body bytes of a delivery; the same bytes on every attempt."""
    if oauth is not None:
        headers = {k: tpl.header_text(tpl.resolve_deferred(v, oauth)) for k, v in (headers or {}).items()}
        body = tpl.resolve_deferred(body, oauth) if body is not None else {}
    else:
        headers = dict(headers or {})
    # A form, multipart or query body is stored as [name, value] pairs (PostgreSQL's jsonb
    # does not keep an object's key order, and these encodings are sent in the body's order).
    if isinstance(body, list):
        items = [(item[0], item[1]) for item in body if isinstance(item, list) and len(item) == 2]
    else:
        items = list(body.items()) if isinstance(body, dict) else []
    if body_kind == "json":
        return url, headers, json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False).encode()
    pairs = [(str(k), text) for k, v in items if (text := tpl.form_value(v)) is not None]
    if body_kind == "form":
        return url, headers, urlencode(pairs).encode()
    if body_kind == "query":
        if pairs:
            url = url + ("&" if "?" in url else "?") + urlencode(pairs)
        return url, headers, None
    # multipart: a boundary fixed per delivery, so every attempt sends the same bytes
    boundary = "herald-" + hashlib.sha256(webhook_id.encode()).hexdigest()[:32]
    chunks: list[bytes] = []
    for key, value in pairs:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(key)}"\r\n\r\n'.encode()
                      + value.encode() + b"\r\n")
    if snapshot is not None and snapshot_key:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(snapshot_key)}"; '
                      f'filename="snapshot.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode() + snapshot + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    return url, headers, b"".join(chunks)


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


# --- claiming -----------------------------------------------------------------------------




@dataclass
class Claimed:
    """A claimed delivery as the claim statement returned it (lighter than a model)."""

    id: int
    target_id: int
    attempts: int
    webhook_id: str
    url: str
    method: str
    headers: dict
    body_kind: str
    body: Any
    snapshot_key: str
    snapshot_path: str | None
    sequence: int
    event_type: str
    occurred_at: str  # ISO 8601
    sealed: str = ""  # the request with its secrets, encrypted (url/headers/body are redacted then)

    @classmethod
    def from_row(cls, row: dict) -> Claimed:
        values = {name: row[name] for name in CLAIMED_COLUMNS}
        for name in ("headers", "body"):
            if isinstance(values[name], str | bytes):
                values[name] = json.loads(values[name])
        when = values["occurred_at"]
        values["occurred_at"] = (when if isinstance(when, datetime) else datetime.fromisoformat(when)).isoformat()
        return cls(**values)


async def claim(herald: Herald, worker_id: str, *, limit: int, lease: float,
                per_target: int = BATCH_PER_TARGET) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries (at most ``per_target`` per target) in one statement."""
    now = herald.clock.now()
    connection = Tortoise.get_connection("default")
    postgres = not herald.settings.is_sqlite
    values = [now + timedelta(seconds=lease), worker_id, now, per_target, limit]
    # execute_query_dict: Tortoise's execute_query drops RETURNING rows of an UPDATE on asyncpg.
    rows = await connection.execute_query_dict(sql.claim(postgres), values)
    return sorted((Claimed.from_row(row) for row in rows), key=lambda c: c.id)


async def release(worker_id: str, ids: list[int] | None = None) -> int:
    """Give claimed rows back to the queue without counting an attempt."""
    query = Delivery.filter(claimed_by=worker_id, status="in_flight")
    if ids is not None:
        if not ids:
            return 0
        query = query.filter(id__in=ids)
    return await query.update(status="pending", locked_until=None, claimed_by=None)


async def recover_deliveries(herald: Herald) -> tuple[list[int], int]:
    """At start: give deliveries left in flight by a stopped process back to the queue.

    Returns (ids requeued, ids still leased). On SQLite only one process serves, so every
    in-flight row belonged to a process that is gone; on PostgreSQL other processes may be
    serving, so only rows whose lease expired are requeued (the others are theirs, or
    become claimable when their lease passes).
    """
    now = herald.clock.now()
    stale = Delivery.filter(status="in_flight")
    if not herald.settings.is_sqlite:
        stale = stale.filter(locked_until__lte=now)
    # tortoise types values_list(flat=True) as tuples; it gives the values themselves.
    ids: list[int] = sorted(await stale.values_list("id", flat=True))  # type: ignore[arg-type]
    if ids:
        await Delivery.filter(id__in=ids, status="in_flight").update(
            status="pending", locked_until=None, claimed_by=None)
    leased = await Delivery.filter(status="in_flight").count()
    return ids, leased


# --- the worker pool ------------------------------------------------------------------------


@dataclass
class Outcome:
    delivery_id: int
    target_id: int
    attempts_before: int
    started_at: datetime
    ok: bool
    status_code: int | None = None
    latency_ms: int = 0
    response: str = ""
    error: str = ""
    retry_after: float | None = None
    gone: bool = False
    final: bool = False  # can never be sent as it is (a bad URL or header): fail now, do not retry
    snapshot_path: str | None = None


class DeliveryWorker:
    """The queue worker of one process: claims, sends with bounded concurrency, records."""

    def __init__(self, herald: Herald, *, policy: RetryPolicy | None = None) -> None:
        self.herald = herald
        settings = herald.settings
        self.policy = policy or RetryPolicy(schedule=tuple(settings.webhook_retry_schedule))
        self.timeout = float(settings.webhook_timeout)
        self.lease = max(float(settings.webhook_lease), 2 * self.timeout + 1)
        self.concurrency = int(settings.webhook_concurrency)
        self.poll_interval = float(settings.webhook_poll_interval)
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._batches: set[asyncio.Task] = set()
        self._busy_targets: set[int] = set()
        self._results: list[Outcome] = []
        self._flush_wanted = asyncio.Event()
        self._stopping = False
        self._flush_lock = asyncio.Lock()

    # lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(self.concurrency * 2, 10), limit_per_host=0),
                headers={"User-Agent": "Herald-Webhooks"},
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def notify(self) -> None:
        """New deliveries exist: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """The background task: claim, send, record, until cancelled; then release claims.

        Cancellation never lands inside a database call (a query cut off half-way
        wedges Tortoise's SQLite connection): the loop runs as its own task, and a
        cancel only asks it to stop at its next safe point.
        """
        await self.open()
        self._stopping = False
        recorder = asyncio.create_task(self._record_loop(), name="herald:webhook-recorder")
        loop = asyncio.create_task(self._loop(), name="herald:webhook-claims")
        try:
            await asyncio.shield(loop)
        finally:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(Exception):
                await loop
            await self._shutdown(recorder)

    async def _loop(self) -> None:
        retry_soon = False
        while not self._stopping:
            claimed = 0
            if self.concurrency - len(self._busy_targets) > 0:
                try:
                    claimed = await self._claim_and_start()
                except Exception as exc:
                    self._write_failed(exc, "claiming webhook deliveries")
                    await asyncio.sleep(1.0)
            woken = False
            if claimed == 0 and not self._stopping:
                timeout = 0.05 if retry_soon else self.poll_interval
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                    woken = True
                except TimeoutError:
                    pass
                self._wake.clear()
            # A wake may come before the enqueuing transaction commits (PostgreSQL):
            # after a wake that finds nothing, look once more shortly.
            retry_soon = woken and claimed == 0 and not retry_soon

    async def _shutdown(self, recorder: asyncio.Task) -> None:
        if self._batches:
            _, pending = await asyncio.wait(set(self._batches), timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        self._flush_wanted.set()
        with contextlib.suppress(Exception):
            await recorder
        try:
            await self.flush()
            released = await release(self.worker_id)
            if released:
                log.info("released %d claimed webhook deliveries back to the queue", released)
        except Exception as exc:
            # Not recorded: the rows stay in flight and the next start requeues them.
            self._write_failed(exc, "recording or releasing webhook deliveries at shutdown")

    # claiming and sending ---------------------------------------------------------------
    async def _claim_and_start(self) -> int:
        free = self.concurrency - len(self._busy_targets)
        deliveries = await claim(self.herald, self.worker_id, limit=free * BATCH_PER_TARGET, lease=self.lease)
        if not deliveries:
            return 0
        deadline = time.monotonic() + self.lease
        targets = {t.id: t for t in await WebhookTarget.filter(
            id__in={d.target_id for d in deliveries}).prefetch_related("owner")}
        allow_private_setting = bool(await effective(self.herald, "webhook_allow_private"))
        by_target: dict[int, list[Claimed]] = {}
        for delivery in deliveries:
            by_target.setdefault(delivery.target_id, []).append(delivery)
        for target_id, rows in by_target.items():
            target = targets[target_id]
            allow_private = target.owner.is_admin or allow_private_setting
            self._busy_targets.add(target_id)
            task = asyncio.create_task(self._run_batch(target, rows, deadline, allow_private))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        return len(deliveries)

    async def _run_batch(self, target: WebhookTarget, rows: list[Claimed], deadline: float,
                         allow_private: bool) -> None:
        try:
            async with self._slots:
                keys = signing_secrets(self.herald, target, self.herald.clock.now())
                for index, delivery in enumerate(rows):
                    if self._stopping or time.monotonic() > deadline - (self.timeout + 2):
                        await shielded(release(self.worker_id, [d.id for d in rows[index:]]))
                        return
                    outcome = await self.attempt(target, delivery, allow_private=allow_private, keys=keys)
                    self._results.append(outcome)
                    self._flush_wanted.set()
                    if not outcome.ok:
                        # Do not hammer a failing receiver with the rest of the batch.
                        await shielded(release(self.worker_id, [d.id for d in rows[index + 1:]]))
                        return
        finally:
            self._busy_targets.discard(target.id)

    async def attempt(self, target: WebhookTarget, delivery: Claimed, *, allow_private: bool,
                      keys: list[str] | None = None) -> Outcome:
        """Send one delivery once; never raises for what the receiver or network did."""
        herald = self.herald
        now = herald.clock.now()
        outcome = Outcome(delivery.id, target.id, delivery.attempts, now, ok=False,
                          snapshot_path=delivery.snapshot_path)
        started = time.monotonic()
        try:
            oauth = await self.oauth_params(target, allow_private=allow_private) if target.oauth_enabled else None
            snapshot = _read_snapshot(herald, delivery.snapshot_path) if delivery.snapshot_key else None
            frozen = (unseal(herald.secret_box, delivery.sealed) if delivery.sealed else
                      {"url": delivery.url, "headers": delivery.headers, "body": delivery.body})
            url, headers, data = encode(
                webhook_id=delivery.webhook_id, url=frozen["url"], headers=frozen["headers"],
                body_kind=delivery.body_kind, body=frozen["body"], snapshot_key=delivery.snapshot_key,
                snapshot=snapshot, oauth=oauth)
            # The receiver compares this with its own wall clock (Standard Webhooks allow
            # 5 minutes), so it is the real time of sending, never a clock tests moved.
            timestamp = int(time.time())
            headers["webhook-id"] = delivery.webhook_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = " ".join(
                sign(key, delivery.webhook_id, timestamp, data or b"")
                for key in (keys or signing_secrets(herald, target, now)))
            headers["herald-sequence"] = str(delivery.sequence)
            headers["herald-event-type"] = delivery.event_type
            headers["herald-occurred-at"] = delivery.occurred_at
            problem = unsendable(url)
            if problem:
                raise UnsendableRequest(f"this request can never be sent: {problem}")
            assert self.session is not None
            answer = await send(self.session, method=delivery.method, url=url, headers=headers, data=data,
                                timeout=self.timeout, allow_private=allow_private)
        except BlockedAddress as exc:
            outcome.error = str(exc)  # retried: an admin may allow private addresses meanwhile
        except UnsendableRequest as exc:
            outcome.error = str(exc)
            outcome.final = True
        except TimeoutError:
            outcome.error = f"no answer within {self.timeout:g} s"
        except OAuthError as exc:
            outcome.error = str(exc)
        except (aiohttp.ClientError, OSError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"[:_KEEP_ERROR]
        except ValueError as exc:
            # The frozen request is the same on every attempt, so what aiohttp refuses
            # to send now (a bad URL or header) it would refuse for days: fail at once.
            outcome.error = f"this request can never be sent: {exc}"[:_KEEP_ERROR]
            outcome.final = True
        else:
            outcome.status_code = answer.status
            outcome.response = answer.text
            if 200 <= answer.status < 300:
                outcome.ok = True
            elif 300 <= answer.status < 400:
                location = answer.headers.get("Location", "")
                outcome.error = f"redirect to {location or '(no location)'} not followed"
            else:
                outcome.error = f"HTTP {answer.status}"
                outcome.gone = answer.status == 410
                if answer.status in (429, 503):
                    outcome.retry_after = retry_after_seconds(answer.headers.get("Retry-After"), now)
        outcome.latency_ms = int((time.monotonic() - started) * 1000)
        return outcome

    # OAuth pre-request ------------------------------------------------------------------------
    async def oauth_params(self, target: WebhookTarget, *, allow_private: bool) -> dict[str, Any]:
        herald = self.herald
        now = herald.clock.now()
        if target.oauth_token and target.oauth_expires_at and target.oauth_expires_at > now:
            return json.loads(herald.secret_box.decrypt(target.oauth_token))
        headers = json.loads(target.oauth_headers or "{}")
        body = json.loads(herald.secret_box.decrypt(target.oauth_body)) if target.oauth_body else {}
        kind = "query" if target.oauth_method == "GET" else target.oauth_content_type
        if kind == "json":
            headers.setdefault("Content-Type", "application/json")
        elif kind == "form":
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        url, headers, data = encode(webhook_id="oauth", url=target.oauth_url, headers=headers, body_kind=kind,
                                    body=body, snapshot_key="", snapshot=None, oauth=None)
        assert self.session is not None
        try:
            answer = await send(self.session, method=target.oauth_method, url=url, headers=headers, data=data,
                                timeout=self.timeout, allow_private=allow_private)
        except TimeoutError:
            raise OAuthError(f"OAuth pre-request: no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise OAuthError(f"OAuth pre-request failed: {type(exc).__name__}: {exc}") from None
        if not 200 <= answer.status < 300:
            raise OAuthError(f"OAuth pre-request answered HTTP {answer.status}: {answer.text[:200]}")
        try:
            params = json.loads(answer.body)
        except ValueError:
            raise OAuthError("OAuth pre-request did not answer with JSON") from None
        if not isinstance(params, dict):
            raise OAuthError("OAuth pre-request did not answer with a JSON object")
        expires_in = params.get("expires_in")
        if isinstance(expires_in, int | float) and expires_in > 0:
            # Refresh a little early so a token does not expire on its way.
            expires_at = now + timedelta(seconds=max(float(expires_in) * 0.9, float(expires_in) - 60))
            target.oauth_token = herald.secret_box.encrypt(json.dumps(params))
            target.oauth_expires_at = expires_at
            await shielded(WebhookTarget.filter(id=target.id).update(oauth_token=target.oauth_token,
                                                                     oauth_expires_at=expires_at))
        return params

    # recording -------------------------------------------------------------------------------
    async def _record_loop(self) -> None:
        while not self._stopping:
            await self._flush_wanted.wait()
            if not self._stopping:
                await asyncio.sleep(0.005)  # let a few results gather
            self._flush_wanted.clear()
            try:
                await self.flush()
            except Exception as exc:
                self._write_failed(exc, "recording webhook results")
                await asyncio.sleep(1.0)
                self._flush_wanted.set()
            self._wake.set()  # the targets just recorded may have more to send

    async def flush(self) -> None:
        async with self._flush_lock:
            results, self._results = self._results, []
            if results:
                try:
                    finished = await record_outcomes(self.herald, self.worker_id, results, self.policy)
                except BaseException:
                    # Kept for the next try (a full disk, the database away): dropped, an answered
                    # delivery would be sent again once its lease ran out.
                    self._results = results + self._results
                    raise
                if finished:
                    await release_snapshots(self.herald, finished)
                if self._disk().room_again():
                    log.info("The data disk has room again: webhook results are recorded again")

    def _disk(self) -> DiskState:
        return self.herald.part(DiskState)

    def _write_failed(self, error: BaseException, what: str) -> None:
        log_write_failure(log, self._disk(), error, self.herald.clock.now(), what)


class OAuthError(Exception):
    pass


class UnsendableRequest(Exception):
    """The frozen request can never be sent as it is (its URL is not one Herald sends to)."""


def unsendable(url: str) -> str | None:
    """Why a rendered URL can never be sent, or None."""
    problem = url_problem(url)
    if problem:
        return problem
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    return numeric_host_problem(host)


def _read_snapshot(herald: Herald, path: str | None) -> bytes | None:
    if not path:
        return None
    file = Path(path)
    if not file.is_absolute():
        file = herald.settings.data_path / file
    try:
        return file.read_bytes()
    except OSError:
        return None


async def record_outcomes(herald: Herald, worker_id: str, results: list[Outcome], policy: RetryPolicy) -> set[str]:
    """Write a batch of attempts: one UPDATE for all successes, one per failure.

    Returns the snapshot paths of deliveries that finished (delivered or failed).
    """
    now = herald.clock.now()
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    disable: dict[int, str] = {}
    finished = {r.snapshot_path for r in ok if r.snapshot_path}
    async with in_transaction() as conn:
        await DeliveryAttempt.bulk_create([
            DeliveryAttempt(delivery_id=r.delivery_id, started_at=r.started_at, status_code=r.status_code,
                            latency_ms=r.latency_ms, response=r.response, error=r.error)
            for r in results], using_db=conn)
        if ok:
            await Delivery.filter(id__in=[r.delivery_id for r in ok], claimed_by=worker_id).using_db(conn).update(
                status="delivered", attempts=F("attempts") + 1, locked_until=None, claimed_by=None,
                finished_at=now, last_error="")
            await WebhookTarget.filter(id__in={r.target_id for r in ok},
                                       failing_since__not_isnull=True).using_db(conn).update(failing_since=None)
        for r in failed:
            attempts = r.attempts_before + 1
            delay = policy.next_delay(attempts, random.random())
            if delay is not None and r.retry_after is not None:
                delay = min(r.retry_after, 86400.0)
            if r.final:
                delay = None
            if r.gone:
                delay = None
                disable[r.target_id] = "The receiver answered 410 Gone, so Herald disabled this webhook."
            changes: dict[str, Any] = {"attempts": attempts, "locked_until": None, "claimed_by": None,
                                       "last_error": r.error[:_KEEP_ERROR]}
            if delay is None:
                changes.update(status="failed", finished_at=now)
                if r.snapshot_path:
                    finished.add(r.snapshot_path)
            else:
                changes.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
            await Delivery.filter(id=r.delivery_id, claimed_by=worker_id).using_db(conn).update(**changes)
        if failed:
            failing = {r.target_id for r in failed} - {r.target_id for r in ok}
            await WebhookTarget.filter(id__in=failing, failing_since__isnull=True).using_db(conn).update(
                failing_since=now)
            limit = timedelta(days=float(herald.settings.webhook_disable_after_days))
            for target in await WebhookTarget.filter(id__in=failing, failing_since__lte=now - limit,
                                                     enabled=True).using_db(conn):
                disable.setdefault(target.id, (
                    f"Every delivery has failed since {target.failing_since:%Y-%m-%d %H:%M} UTC, "
                    "so Herald disabled this webhook. Check the receiver, then enable it again."))
        for target_id, reason in disable.items():
            await WebhookTarget.filter(id=target_id, enabled=True).using_db(conn).update(
                enabled=False, disabled_reason=reason, disabled_at=now)
    for target_id, reason in disable.items():
        log.warning("webhook target %s disabled: %s", target_id, reason)
        asyncio.create_task(_mail_disabled(herald, target_id, reason))
    return finished


async def release_snapshots(herald: Herald, paths: set[str]) -> int:
    """Delete snapshot files no unfinished delivery needs any more (the contract keeps them no longer)."""
    removed = 0
    root = herald.settings.data_path.resolve()
    for path in paths:
        if await Delivery.filter(snapshot_path=path, status__in=("pending", "in_flight")).exists():
            continue
        await Event.filter(snapshot_path=path).update(snapshot_path=None)
        file = (root / path).resolve()
        if file.is_relative_to(root):
            file.unlink(missing_ok=True)
            removed += 1
    return removed


async def _mail_disabled(herald: Herald, target_id: int, reason: str) -> None:
    try:
        if not await mail_configured(herald):
            return
        target = await WebhookTarget.get_or_none(id=target_id).prefetch_related("owner")
        if target is None:
            return
        await send_mail(herald, to=target.owner.email, subject=f"Herald disabled your webhook {target.name}",
                        text=f"{reason}\n\nWebhook: {target.name}\nURL: {target.url}\n"
                             f"Manage it at {herald.settings.base_url}/webhooks/{target.id}\n")
    except Exception:
        log.exception("could not mail about disabled webhook %s", target_id)


SNAPSHOT_GRACE = timedelta(minutes=10)


async def purge(herald: Herald) -> int:
    """Delete deliveries (and their attempts) older than the retention period.

    Also removes snapshots of events that no unfinished delivery needs (events whose
    targets did not ask for the snapshot), once they are SNAPSHOT_GRACE old.
    """
    now = herald.clock.now()
    # tortoise types values_list(flat=True) as tuples; it gives the values themselves.
    stale: list[str | None] = await Event.filter(  # type: ignore[assignment]
        snapshot_path__not_isnull=True, received_at__lt=now - SNAPSHOT_GRACE
    ).values_list("snapshot_path", flat=True)
    if stale:
        await release_snapshots(herald, {p for p in stale if p})
    cutoff = now - timedelta(days=int(herald.settings.webhook_retention_days))
    total = 0
    while True:
        ids = await Delivery.filter(accepted_at__lt=cutoff).limit(1000).values_list("id", flat=True)
        if not ids:
            return total
        await DeliveryAttempt.filter(delivery_id__in=ids).delete()
        total += await Delivery.filter(id__in=ids).delete()
