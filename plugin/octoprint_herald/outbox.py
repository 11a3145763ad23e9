"""Events waiting for Herald, in JSON files in the plugin's data folder, a batch per file.

A batch is written atomically (temporary name, fsync, rename) by the plugin's own intake
thread, never by one of OctoPrint's threads, and one fsync covers every event that arrived
meanwhile: a busy SD card costs one sync per batch, not one per percent of progress. A
file is removed (or rewritten with what is left) only after Herald accepted its events,
so events survive Herald being down, the network failing and OctoPrint restarting. Names
sort in the order batches were put. Herald accepts a repeated event id once, so a batch
resent after a crash never makes a duplicate.
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
        self._lock = threading.Lock()  # guards the counters only; no I/O is done under it
        self._counts: dict[str, int] = {}
        # Leftover temporary files are batches that never finished being written.
        for name in os.listdir(folder):
            if name.endswith(".tmp"):
                os.unlink(os.path.join(folder, name))
        # A sequence number (not the wall clock, which can jump back) orders the files.
        numbers = [int(n.split("-", 1)[0]) for n in self.names() if n.split("-", 1)[0].isdigit()]
        self._sequence = itertools.count(max(numbers, default=0) + 1)
        for name in self.names():
            self._counts[name] = len(self.read(name) or [])

    def put(self, record: dict) -> str:
        """Store one record (``{"event": {...}, ...}``) durably; returns its file name."""
        return self.put_many([record])

    def put_many(self, records: list[dict]) -> str:
        """Store records as one batch, with one fsync; returns the batch's file name."""
        with self._lock:
            name = f"{next(self._sequence):012d}-{records[0]['event']['id']}.json"
        self._write(os.path.join(self.folder, name), records)
        with self._lock:
            self._counts[name] = len(records)
        return name

    @staticmethod
    def _write(path: str, records: list[dict]) -> None:
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump({"records": records}, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(path + ".tmp", path)
        except OSError:
            try:
                os.unlink(path + ".tmp")
            except OSError:
                pass
            raise

    def names(self) -> list[str]:
        """Waiting batches, oldest first."""
        return sorted(n for n in os.listdir(self.folder) if n.endswith(".json"))

    def __len__(self) -> int:
        """How many events wait (not files)."""
        with self._lock:
            return sum(self._counts.values())

    def read(self, name: str) -> list[dict] | None:
        """The records of a batch, oldest first (a file of an older plugin holds one record)."""
        try:
            with open(os.path.join(self.folder, name), encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError:
            # A damaged file cannot be sent; keep it aside for a human rather than loop on it.
            self.reject(name)
            return None
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            return data["records"]
        if isinstance(data, dict) and isinstance(data.get("event"), dict):
            return [data]
        self.reject(name)
        return None

    def attachment_path(self, name: str, event_id: str) -> str:
        """Where the webcam snapshot taken for this event is kept."""
        return os.path.join(self.folder, f"{name[: -len('.json')]}.{event_id}.jpg")

    def replace(self, name: str, records: list[dict]) -> None:
        """Keep only ``records`` of this batch (the others reached Herald)."""
        if not records:
            self.remove(name)
            return
        self._write(os.path.join(self.folder, name), records)
        with self._lock:
            self._counts[name] = len(records)

    def remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.folder, name))
        except FileNotFoundError:
            pass
        prefix = name[: -len(".json")] + "."
        for other in os.listdir(self.folder):
            if other.startswith(prefix) and other.endswith(".jpg"):
                try:
                    os.unlink(os.path.join(self.folder, other))
                except FileNotFoundError:
                    pass
        with self._lock:
            self._counts.pop(name, None)

    def reject(self, name: str, record: dict | None = None) -> None:
        """Herald refused an event for good (4xx): keep it out of the queue, but keep it.

        With ``record``, only that event of the batch is set aside (the caller rewrites the
        batch); without, the whole file is (it cannot be read).
        """
        if record is not None:
            event_id = str((record.get("event") or {}).get("id"))
            self._write(os.path.join(self.rejected_folder, f"{name[: -len('.json')]}.{event_id}.json"), [record])
            try:
                os.unlink(self.attachment_path(name, event_id))
            except FileNotFoundError:
                pass
            return
        try:
            os.replace(os.path.join(self.folder, name), os.path.join(self.rejected_folder, name))
        except FileNotFoundError:
            pass
        with self._lock:
            self._counts.pop(name, None)
