"""Read a text/event-stream from the Quart test client, event by event."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class SSEEvent:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class SSEReader:
    def __init__(self, connection) -> None:
        self.connection = connection
        self.buffer = ""
        self.comments: list[str] = []
        self.retry: int | None = None

    @property
    def status_code(self) -> int | None:
        return self.connection.status_code

    async def next(self, timeout: float = 5.0) -> SSEEvent:
        """The next event (comments and retry lines are recorded, not returned)."""
        async with asyncio.timeout(timeout):
            while True:
                while "\n\n" in self.buffer:
                    block, self.buffer = self.buffer.split("\n\n", 1)
                    event, data = "message", []
                    for line in block.split("\n"):
                        if line.startswith(":"):
                            self.comments.append(line[1:].strip())
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].lstrip())
                        elif line.startswith("retry:"):
                            self.retry = int(line[6:].strip())
                    if data:
                        return SSEEvent(event, "\n".join(data))
                chunk = await self.connection.receive()
                self.buffer += chunk.decode()

    async def next_of(self, event: str, timeout: float = 5.0) -> SSEEvent:
        async with asyncio.timeout(timeout):
            while True:
                found = await self.next(timeout)
                if found.event == event:
                    return found

    async def wait_comment(self, text: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.comments:
                chunk = await self.connection.receive()
                self.buffer += chunk.decode()
                while "\n\n" in self.buffer:
                    block, self.buffer = self.buffer.split("\n\n", 1)
                    self.comments += [line[1:].strip() for line in block.split("\n") if line.startswith(":")]


@asynccontextmanager
async def sse(client, path: str):
    """``async with sse(client, "/events/dashboard") as stream: await stream.next()``."""
    async with client.request(path, headers={"Accept": "text/event-stream"}) as connection:
        await connection.send_complete()
        try:
            yield SSEReader(connection)
        finally:
            await connection.disconnect()
