"""A real mosquitto for tests (Debian's /usr/sbin/mosquitto, its own port and config, restartable),
and an observer: a second MQTT client that sees what Herald published, as Home Assistant would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.support.needs import unavailable

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """mosquitto on 127.0.0.1 on a free port; ``stop`` and ``start`` again keep the port.

    Without persistence, so a restart loses every retained message: what a fresh client sees
    afterwards is what Herald published again.
    """

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                               f"log_dest file {directory / 'mosquitto.log'}\nlog_type all\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.directory / 'mosquitto.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def mosquitto(tmp_path_factory):
    if not Path(MOSQUITTO).exists():
        unavailable("mosquitto is not installed (.ci/run installs Debian's mosquitto)")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


class Observer:
    """Subscribes to ``#`` and keeps every message: ``retained`` is the broker's retained view."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[str, str, bool]] = []
        self.retained: dict[str, str] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._connected = asyncio.Event()

    async def __aenter__(self) -> Observer:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), 20)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier=f"observer-{id(self)}") as client:
            await client.subscribe("#", qos=1)
            self._connected.set()
            async for message in client.messages:
                payload = message.payload
                text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload or "")
                topic = str(message.topic)
                async with self._changed:
                    self.messages.append((topic, text, bool(message.retain)))
                    if text:
                        self.retained[topic] = text
                    else:
                        self.retained.pop(topic, None)
                    self._changed.notify_all()

    async def wait_for(self, predicate, timeout: float = 30.0) -> Any:
        """Until ``predicate(self)`` is truthy (a bound against hanging, not a speed check)."""
        async def waiting():
            async with self._changed:
                while not (found := predicate(self)):
                    await self._changed.wait()
                return found
        return await asyncio.wait_for(waiting(), timeout)

    def configs(self, node: str | None = None) -> dict[str, dict]:
        """Retained discovery configs (topic -> payload), of one device's node if given."""
        return {topic: json.loads(payload) for topic, payload in self.retained.items()
                if topic.endswith("/config") and (node is None or f"/{node}/" in topic)}

    def json(self, topic: str) -> dict | None:
        payload = self.retained.get(topic)
        return json.loads(payload) if payload else None
