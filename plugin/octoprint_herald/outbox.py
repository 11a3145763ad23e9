"""Events waiting for Herald, one JSON file each in the plugin's data folder.

A file is written atomically (temporary name, fsync, rename) before ``put`` returns and is
removed only after Herald accepted the event, so events survive Herald being down, the
network failing and OctoPrint restarting. Names sort in the order events were put.
"""

from __future__ import annotations

import itertools
import json
import os
import threading


class Outbox:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.rejected_folder = os.path.join(folder, "rejected")
        os.makedirs(self.rejected_folder, exist_ok=True)
        self._lock = threading.Lock()
        # Leftover temporary files are events that never finished being written.
        for name in os.listdir(folder):
            if name.endswith(".tmp"):
                os.unlink(os.path.join(folder, name))
        # A sequence number (not the wall clock, which can jump back) orders the files.
        numbers = [int(n.split("-", 1)[0]) for n in self.names() if n.split("-", 1)[0].isdigit()]
        self._sequence = itertools.count(max(numbers, default=0) + 1)

    def put(self, record: dict) -> str:
        """Store a record (``{"event": {...}, ...}``) durably; returns its file name."""
        with self._lock:
            name = f"{next(self._sequence):012d}-{record['event']['id']}.json"
        path = os.path.join(self.folder, name)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(record, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(path + ".tmp", path)
        return name

    def names(self) -> list[str]:
        """Waiting events, oldest first."""
        return sorted(n for n in os.listdir(self.folder) if n.endswith(".json"))

    def __len__(self) -> int:
        return len(self.names())

    def read(self, name: str) -> dict | None:
        try:
            with open(os.path.join(self.folder, name), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError:
            # A damaged file cannot be sent; keep it aside for a human rather than loop on it.
            self.reject(name)
            return None

    def attachment_path(self, name: str) -> str:
        """Where the webcam snapshot taken for this event is kept."""
        return os.path.join(self.folder, name[: -len(".json")] + ".jpg")

    def remove(self, name: str) -> None:
        for path in (os.path.join(self.folder, name), self.attachment_path(name)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def reject(self, name: str) -> None:
        """Herald refused the event for good (4xx): keep it out of the queue, but keep it."""
        try:
            os.replace(os.path.join(self.folder, name), os.path.join(self.rejected_folder, name))
        except FileNotFoundError:
            pass
        try:
            os.unlink(self.attachment_path(name))
        except FileNotFoundError:
            pass
