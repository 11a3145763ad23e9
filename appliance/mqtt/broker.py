"""The MQTT task: one connection to the broker per process, with reconnect and backoff.

On every connect it tells the broker Herald is online (``<base>/status``, whose MQTT will says
``offline``), publishes every published printer again (configs, triggers, state: a broker that lost
its retained messages, or was restarted without persistence, gets them back), clears the configs of
printers this Herald published before but no longer does (the retained index ``<base>/published``,
so a printer removed while Herald was stopped goes too), and then drains the outbox. Every minute,
and when asked, it looks again at which printers are published and at the broker settings (a change
made on the admin page, also in another process, reconnects).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from appliance.core.herald import Herald
from appliance.mqtt import control, discovery
from appliance.mqtt.discovery import Message, Topics
from appliance.mqtt.publishing import (
    REFRESH_EVERY,
    BrokerConfig,
    HomeAssistantPublisher,
    broker_config,
)

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
CONNECT_TIMEOUT = 10.0
STOP_WAIT = 1.0  # seconds a session's workers get to end once cancelled
INDEX_WAIT = 2.0  # seconds to wait for the retained index after subscribing (absent: nothing published)


def backoff(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds before reconnect attempt ``attempt`` (0, 1, ...): doubling from 1 s to 60 s, ±20%."""
    delay = min(BACKOFF_FIRST * 2 ** attempt, BACKOFF_MAX)
    return delay * (rng or random).uniform(0.8, 1.2)


@dataclass
class ConnectionState:
    """What Admin > Home Assistant shows about this process's broker connection."""

    status: str = "off"  # off | connecting | connected | retrying
    broker: str = ""
    since: datetime | None = None
    last_error: str = ""
    next_attempt_at: datetime | None = None
    published: int = 0  # messages the broker took since this process started


class _Reconfigure(Exception):
    """The broker settings changed: connect again with the new ones."""


class BrokerLink:
    """The part create_app provides; ``run`` is the background task."""

    def __init__(self, herald: Herald, publisher: HomeAssistantPublisher) -> None:
        self.herald = herald
        self.publisher = publisher
        self.state = ConnectionState()
        self.reconfigured = asyncio.Event()
        self._status_changed = asyncio.Event()  # replaced by a fresh one at each change
        self._attempt = 0  # failed connects since the last good one (the backoff's step)
        self.identifier = f"herald-{socket.gethostname()}-{os.getpid()}"

    def _set(self, status: str, **changes) -> None:
        self.state.status = status
        self.state.since = self.herald.clock.now()
        for name, value in changes.items():
            setattr(self.state, name, value)
        changed, self._status_changed = self._status_changed, asyncio.Event()
        changed.set()

    async def wait_for_status(self, *statuses: str) -> None:
        """Until the connection is in one of these states (tests and scripts wait on it)."""
        while self.state.status not in statuses:
            await self._status_changed.wait()

    async def run(self) -> None:
        while True:
            config = await broker_config(self.herald)
            if not config.host:
                self.publisher.topics = None
                self.publisher.outbox.clear()
                self._set("off", broker="", last_error="", next_attempt_at=None)
                await self._wait_reconfigured(REFRESH_EVERY)
                continue
            if self.publisher.topics != config.topics:
                self.publisher.outbox.clear()  # messages for other topics: everything is published on connect
            self.publisher.topics = config.topics
            self._set("connecting", broker=config.address, next_attempt_at=None)
            # Imported once a broker is set: a Herald without Home Assistant never loads aiomqtt and
            # paho-mqtt (about 1 MiB of its idle memory: scripts/bench_memory.py, docs/benchmarks.md).
            import aiomqtt

            try:
                await self._session(config)
            except _Reconfigure:
                self._attempt = 0
                continue
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                delay = backoff(self._attempt)
                self._attempt += 1
                self._set("retrying", last_error=str(exc) or type(exc).__name__,
                          next_attempt_at=self.herald.clock.now() + _seconds(delay))
                log.warning("MQTT broker %s: %s; trying again in %.0f s", config.address, exc, delay)
                await self._wait_reconfigured(delay)
                continue

    async def _wait_reconfigured(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.reconfigured.wait(), timeout)
        except TimeoutError:
            pass
        self.reconfigured.clear()

    def _client(self, config: BrokerConfig) -> aiomqtt.Client:
        import aiomqtt  # loaded by run() already

        topics = config.topics
        return aiomqtt.Client(
            config.host, config.port, username=config.username or None, password=config.password or None,
            identifier=self.identifier, timeout=CONNECT_TIMEOUT, keepalive=30,
            will=aiomqtt.Will(topics.herald_status, discovery.OFFLINE, qos=1, retain=True),
            tls_context=ssl.create_default_context() if config.tls else None,
        )

    async def _session(self, config: BrokerConfig) -> None:
        topics = config.topics
        async with self._client(config) as client:
            self._attempt = 0
            self._set("connected", last_error="", next_attempt_at=None)
            log.info("MQTT: connected to %s", config.address)
            try:
                await client.publish(topics.herald_status, discovery.ONLINE, qos=1, retain=True)
                before = await self._read_index(client, topics)
                await self._publish_everything(client, topics, removed_since=before)
                workers = [self._drain(client, topics), self._watch(config)]
                if control.available(self.herald):
                    workers.append(self._commands(client, topics))
                await _first_to_fail(workers)
            except _Reconfigure:
                await self._say_offline(client, topics)
                raise
            except asyncio.CancelledError:
                await self._say_offline(client, topics)
                raise

    async def _publish_everything(self, client: aiomqtt.Client, topics: Topics,
                                  removed_since: dict[str, list[str]] | None = None) -> None:
        """Every published printer, straight to the broker (not through the bounded outbox), and the
        removal of those published before (``removed_since``, the index) that are no longer."""
        outbox = self.publisher.outbox
        outbox.resync = False
        outbox.drop_retained()  # older than what is read now (removals too: the index covers them)
        before = {**self.publisher.index(), **(removed_since or {})}
        messages = await self.publisher.everything(topics)
        for printer_id, temperatures in before.items():
            if printer_id not in self.publisher.published:
                messages += discovery.removal(printer_id, tuple(temperatures), topics)
        messages.append(self._index_message(topics))
        for message in messages:
            await client.publish(message.topic, message.payload.encode(), qos=1, retain=message.retain)
            self.state.published += 1

    async def _say_offline(self, client: aiomqtt.Client, topics: Topics) -> None:
        """A clean stop: Home Assistant shows the entities unavailable now, not after the keepalive."""
        import aiomqtt  # loaded by run() already

        try:
            await asyncio.wait_for(client.publish(topics.herald_status, discovery.OFFLINE, qos=1, retain=True), 2.0)
        except (aiomqtt.MqttError, TimeoutError, asyncio.CancelledError):
            pass

    async def _read_index(self, client: aiomqtt.Client, topics: Topics) -> dict[str, list[str]]:
        await client.subscribe(topics.index, qos=1)
        found: dict[str, list[str]] = {}
        try:
            async with asyncio.timeout(INDEX_WAIT):
                async for message in client.messages:
                    if message.topic.matches(topics.index):
                        try:
                            payload = message.payload
                            text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload or "")
                            value = json.loads(text) if text else {}
                            found = value if isinstance(value, dict) else {}
                        except (UnicodeDecodeError, ValueError):
                            found = {}
                        break
        except TimeoutError:
            pass  # nothing retained: this Herald published nothing on this broker yet
        await client.unsubscribe(topics.index)
        return found

    def _index_message(self, topics: Topics) -> Message:
        return Message(topics.index, json.dumps(self.publisher.index(), sort_keys=True), retain=True)

    async def _drain(self, client: aiomqtt.Client, topics: Topics) -> None:
        outbox = self.publisher.outbox
        while True:
            message = outbox.take()
            if message is None:
                if outbox.resync:  # messages were dropped: publish everything again
                    await self._publish_everything(client, topics)
                    continue
                await outbox.wait(REFRESH_EVERY)
                continue
            try:
                await client.publish(message.topic, message.payload.encode(), qos=1, retain=message.retain)
            except BaseException:
                outbox.give_back(message)
                raise
            self.state.published += 1

    async def _watch(self, config: BrokerConfig) -> None:
        """Every minute (or when asked): printers added, renamed or removed; settings changed."""
        publisher = self.publisher
        topics = config.topics
        while True:
            try:
                await asyncio.wait_for(_either(publisher.refresh_wanted, self.reconfigured), REFRESH_EVERY)
            except TimeoutError:
                pass
            if self.reconfigured.is_set() or await broker_config(self.herald) != config:
                self.reconfigured.clear()
                raise _Reconfigure()
            publisher.refresh_wanted.clear()
            before = set(publisher.published)
            messages = await publisher.refresh(topics)
            if messages or set(publisher.published) != before:
                publisher.outbox.put_all(messages + [self._index_message(topics)])

    async def _commands(self, client: aiomqtt.Client, topics: Topics) -> None:
        """Button presses from Home Assistant, each handed to control.run_command."""
        await client.subscribe(f"{topics.base}/+/command", qos=1)
        async for message in client.messages:
            printer_id = str(message.topic).split("/")[-2]
            payload = message.payload
            command = payload.decode(errors="replace") if isinstance(payload, bytes | bytearray) else str(payload)
            await control.run_command(self.herald, printer_id, command.strip().lower())


async def _first_to_fail(workers: list) -> None:
    """Run the session's workers until one ends (they only end by raising); the others are cancelled."""
    tasks = [asyncio.ensure_future(worker) for worker in workers]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # Bounded: after a broker restart, aiomqtt's message iterator was seen not to end on cancel
        # (the stop then hung past the server's shutdown timeout). A straggler ends when the client
        # disconnects, which the caller's ``async with`` does next.
        _finished, stragglers = await asyncio.wait(tasks, timeout=STOP_WAIT)
        for task in stragglers:
            task.add_done_callback(_consume)
            log.debug("MQTT: a session worker did not end on cancel; it ends with the connection")
    for task in done:
        task.result()  # raises the worker's error


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
