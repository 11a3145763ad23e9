"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

from __future__ import annotations

import asyncio
import email
from email.message import Message

from aiosmtpd.controller import Controller

from tests.conftest import free_port


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SMTPServer:
    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SMTPServer:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Message]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.inbox.messages) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} mail(s), got {len(self.inbox.messages)}")
            await asyncio.sleep(0.05)
        return self.inbox.messages

    def settings(self) -> dict[str, object]:
        """Settings overrides that point Herald at this server."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_tls": "none",
                "mail_from": "herald@herald.test"}
