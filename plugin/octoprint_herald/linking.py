"""The device-authorization flow (RFC 8628) from the printer's side, in its own thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .client import HeraldClient, HeraldError


class LinkSession:
    """Polls ``/api/v1/link/token`` until the owner approves, refuses, or the code expires.

    ``on_linked(printer_id, printer_key)`` is called once on approval; ``on_change(state)``
    whenever the state the settings page shows changes.
    """

    def __init__(self, client: HeraldClient, grant: dict, *,
                 on_linked: Callable[[str, str], None],
                 on_change: Callable[[dict], None] = lambda state: None,
                 logger: logging.Logger | None = None) -> None:
        self.client = client
        self.grant = grant
        self._on_linked = on_linked
        self._on_change = on_change
        self._log = logger or logging.getLogger(__name__)
        self._cancelled = threading.Event()
        self.interval = max(1.0, float(grant.get("interval") or 5))
        self.expires_at = time.monotonic() + float(grant.get("expires_in") or 600)
        self.status = "waiting"  # waiting | linked | denied | expired | failed | cancelled
        self.message = "Waiting for you to approve this printer in Herald."
        self._thread = threading.Thread(target=self._run, name="herald-link", daemon=True)

    def start(self) -> LinkSession:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled.set()

    def state(self) -> dict:
        return {
            "status": self.status,
            "message": self.message,
            "user_code": self.grant.get("user_code"),
            "verification_uri": self.grant.get("verification_uri"),
            "verification_uri_complete": self.grant.get("verification_uri_complete"),
        }

    def _finish(self, status: str, message: str) -> None:
        self.status = status
        self.message = message
        log = self._log.info if status == "linked" else self._log.warning
        log("Herald link %s: %s", status, message)
        self._on_change(self.state())

    def _run(self) -> None:
        try:
            self._poll_until_done()
        except Exception as exc:  # never die silently: the page and the log say what happened
            self._log.exception("Herald link polling failed")
            self._finish("failed", f"Linking stopped on an unexpected error ({exc}): start linking again.")

    def _poll_until_done(self) -> None:
        failures = 0
        wait = self.interval
        self._log.info("Herald link started: code %s, polling every %.0f s", self.grant.get("user_code"), wait)
        while not self._cancelled.wait(wait):
            wait = self.interval
            if time.monotonic() >= self.expires_at:
                return self._finish("expired", "The code expired before it was approved: start linking again.")
            try:
                answer = self.client.poll_link(self.grant["device_code"])
            except HeraldError as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    self._log.warning("Herald link poll failed (%d in a row), still polling: %s", failures, exc)
                self.message = f"Still waiting; the last check failed: {exc}"
                self._on_change(self.state())
                if exc.permanent and failures >= 3:
                    return self._finish("failed", str(exc))
                if exc.retry_after is not None:
                    wait = max(self.interval, exc.retry_after)
                continue
            error = answer.get("error")
            if error is None and answer.get("printer_key"):
                try:
                    self._on_linked(str(answer.get("printer_id") or ""), answer["printer_key"])
                except Exception:
                    self._log.exception("Could not store the printer key")
                    return self._finish("failed", "Herald approved the printer, but the key could not be saved.")
                return self._finish("linked", "Linked: this printer now publishes to Herald.")
            if error == "slow_down":
                self.interval += 5  # RFC 8628 §3.5: for this and every later poll
                self._log.info("Herald asks to poll more slowly: every %.0f s now", self.interval)
            elif error == "access_denied":
                return self._finish("denied", "The link was refused in Herald.")
            elif error == "expired_token":
                if failures:
                    # A Herald older than the plugin: the poll that carried the key failed on the way.
                    return self._finish("expired", "Herald already handed out this code's key, but its answer "
                                        "did not arrive (a check failed on the way): start linking again.")
                return self._finish("expired", "The code expired before it was approved: start linking again.")
            elif error != "authorization_pending":
                return self._finish("failed", f"Herald answered the link poll with {answer!r}: start linking again.")
        self.status = "cancelled"
        self._log.info("Herald link cancelled")
