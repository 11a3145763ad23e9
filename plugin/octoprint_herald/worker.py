"""A thread of the plugin's own that takes work from OctoPrint's threads without ever blocking them.

OctoPrint calls the plugin from its event thread, from a thread per progress report, from
the serial thread (G-code hooks) and from its web server. Those calls only ``submit`` to a
``queue.SimpleQueue`` (no lock the worker holds while it writes or waits on the network),
so they return at once whatever the disk or Herald does. The worker takes everything that
arrived meanwhile as one batch: many progress reports cost one disk write.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class Worker:
    def __init__(self, name: str, handle_batch: Callable[[list[Any]], None], *,
                 logger: logging.Logger | None = None) -> None:
        self.name = name
        self._handle_batch = handle_batch
        self._log = logger or logging.getLogger(__name__)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._numbers = itertools.count(1)
        self._submitted = 0
        self._done = 0
        self._done_changed = threading.Condition()  # taken by the worker and by waiters, never by submit
        self._thread: threading.Thread | None = None

    # -- called from OctoPrint's threads: never blocks ---------------------------------
    def submit(self, item: Any) -> None:
        number = next(self._numbers)  # atomic under the GIL
        self._submitted = number
        self._queue.put((number, item))

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Worker:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Handle what was submitted, then end the thread (waiting at most ``timeout``)."""
        if self._thread is None:
            return
        self._queue.put((0, _STOP))
        self._thread.join(timeout)
        self._thread = None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted before this call is handled (for tests and shutdown)."""
        target = self._submitted
        with self._done_changed:
            return self._done_changed.wait_for(lambda: self._done >= target, timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = []
            for number, item in batch:
                if item is _STOP:
                    stopping = True
                    break
                items.append((number, item))
            if items:
                try:
                    self._handle_batch([item for _, item in items])
                except Exception:  # never let the worker die: log and go on
                    self._log.exception("Herald's %s thread failed on a batch", self.name)
                with self._done_changed:
                    self._done = max(self._done, items[-1][0])
                    self._done_changed.notify_all()
