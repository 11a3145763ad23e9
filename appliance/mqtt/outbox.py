"""The bounded in-memory queue between Herald's request handlers and the MQTT broker.

Status ingest and event recording only ``put`` here (no I/O, no await), so a broker that is down or
slow never slows them; the MQTT task takes messages out and publishes them.

- Retained messages (configs, state, availability) are keyed by topic: a newer one replaces the one
  waiting, in its place, so a printer that reports ten times while the broker is slow is published
  once, with its latest state (latest wins).
- Device-trigger messages (print events) are not retained and each one counts, so they queue one by
  one; one that waited longer than ``event_max_age`` seconds is dropped when taken out, as an
  automation that fires an hour late ("flash the lights: the print is done") is worse than none.
- Overflow: past ``limit`` waiting messages a new one is dropped and counted, and ``resync`` is set:
  the MQTT task then publishes every printer again from Herald's memory once it has emptied the
  queue, so retained state is never lost for good; only dropped print events are.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from appliance.mqtt.discovery import Message

EVENT_MAX_AGE = 300.0


class Outbox:
    def __init__(self, limit: int, *, event_max_age: float = EVENT_MAX_AGE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.event_max_age = event_max_age
        self._monotonic = monotonic
        self._waiting: dict[object, tuple[Message, float]] = {}
        self._numbers = itertools.count()
        self._ready = asyncio.Event()
        self.dropped = 0
        self.stale_events = 0
        self.resync = False

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, message: Message) -> bool:
        """Queue a message; False when it was dropped (the queue is full)."""
        key: object = message.topic if message.retain else ("event", next(self._numbers))
        if key in self._waiting:
            self._waiting[key] = (message, self._monotonic())
        elif len(self._waiting) >= self.limit:
            self.dropped += 1
            self.resync = True
            return False
        else:
            self._waiting[key] = (message, self._monotonic())
        self._ready.set()
        return True

    def put_all(self, messages: list[Message]) -> None:
        for message in messages:
            self.put(message)

    def take(self) -> Message | None:
        """The oldest waiting message, or None when the queue is empty."""
        while self._waiting:
            key = next(iter(self._waiting))
            message, queued_at = self._waiting.pop(key)
            if not message.retain and self._monotonic() - queued_at > self.event_max_age:
                self.stale_events += 1
                continue
            return message
        self._ready.clear()
        return None

    def give_back(self, message: Message) -> None:
        """A message the broker did not take (the connection broke): first in line again."""
        key: object = message.topic if message.retain else ("event", next(self._numbers))
        if message.retain and key in self._waiting:
            return  # a newer one for the same topic is already waiting
        self._waiting = {key: (message, self._monotonic()), **self._waiting}
        self._ready.set()

    async def wait(self, timeout: float | None = None) -> None:
        """Until a message waits (or the timeout passes)."""
        if self._waiting:
            return
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            pass

    def drop_retained(self) -> None:
        """Forget waiting configs and state (everything is about to be published afresh); keep events."""
        self._waiting = {key: item for key, item in self._waiting.items() if not item[0].retain}
        if not self._waiting:
            self._ready.clear()

    def clear(self) -> None:
        self._waiting.clear()
        self._ready.clear()
