"""Background tasks started in before_serving and stopped in after_serving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Named long-running coroutines owned by the app; a crash is logged and the task restarted."""

    def __init__(self) -> None:
        self._factories: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def add(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Register a task to run while the app serves (call from create_app)."""
        self._factories.append((name, factory))

    def start(self) -> None:
        self._stopping = False
        for name, factory in self._factories:
            self._tasks[name] = asyncio.create_task(self._supervise(name, factory), name=f"herald:{name}")

    async def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting in %.0f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def stop(self, timeout: float = 4.0) -> None:
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                where = " > ".join(_awaiting(task.get_coro()))
                log.warning("background task %s did not stop within %.0f s (at %s)", task.get_name(), timeout,
                            where or "?")
        self._tasks.clear()


def _awaiting(coro: object, depth: int = 12) -> list[str]:
    """Where a coroutine waits, outermost first (file:line of each awaited coroutine)."""
    places = []
    while coro is not None and depth > 0:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            places.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        depth -= 1
    return places
