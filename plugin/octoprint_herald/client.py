"""Herald's /api/v1 over HTTP with ``requests``: every call has timeouts and raises HeraldError."""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import requests

from .version import API_PREFIX, MIN_HERALD_VERSION, __version__

TIMEOUT = (5.0, 15.0)  # connect, read (seconds)


class HeraldError(Exception):
    """A call to Herald failed. ``status`` is the HTTP status, or None when none came back."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after  # seconds, when Herald said (Retry-After)

    @property
    def unauthorized(self) -> bool:
        return self.status == 401

    @property
    def permanent(self) -> bool:
        """Herald judged this very request bad (malformed, too large): resending cannot help.

        Other answers (404 from a wrong address, 426 "update the plugin", 429, 5xx) are about
        the setup or the moment, so the request is kept and retried.
        """
        return self.status in (400, 413, 415, 422)


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in str(version).split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def version_problem(herald_version: str | None) -> str | None:
    """A sentence for the user when this Herald is too old for the plugin, else None."""
    if not herald_version:
        return None
    if version_tuple(herald_version) < version_tuple(MIN_HERALD_VERSION):
        return (f"Herald {herald_version} is too old for this plugin ({__version__}); "
                f"update Herald to {MIN_HERALD_VERSION} or newer.")
    return None


class HeraldClient:
    def __init__(self, base_url: str, *, key: str | None = None, verify: bool | str = True,
                 session: requests.Session | None = None, timeout: tuple[float, float] = TIMEOUT) -> None:
        self.timeout = timeout
        self.base_url = (base_url or "").strip().rstrip("/")
        self.key = key or None
        self.verify = verify
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"OctoPrint-Herald/{__version__}"

    # -- plumbing ---------------------------------------------------------------------
    def _request(self, method: str, path: str, *, auth: bool = True, **kwargs) -> requests.Response:
        if not self.base_url.startswith(("http://", "https://")):
            raise HeraldError("Herald's address must start with http:// or https://")
        headers = kwargs.pop("headers", {})
        if "json" in kwargs:
            kwargs["json"] = finite(kwargs["json"])
        if auth:
            if not self.key:
                raise HeraldError("This printer is not linked to Herald yet.", status=401)
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            timeout = kwargs.pop("timeout", self.timeout)
            response = self.session.request(method, self.base_url + path, headers=headers,
                                            timeout=timeout, verify=self.verify, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise HeraldError(f"Herald's TLS certificate was not accepted ({_reason(exc)}). "
                              "For a self-signed Herald, give its CA bundle in the settings.") from None
        except requests.exceptions.Timeout:
            raise HeraldError("Herald did not answer in time.") from None
        except requests.exceptions.ConnectionError as exc:
            raise HeraldError(f"Could not reach Herald at {self.base_url} ({_reason(exc)}).") from None
        except requests.exceptions.RequestException as exc:
            raise HeraldError(f"Request to Herald failed: {_reason(exc)}") from None
        return response

    @staticmethod
    def _fail(response: requests.Response, what: str) -> HeraldError:
        code = message = None
        try:
            body = response.json()
            if isinstance(body, dict):
                code = body.get("error") or body.get("code")
                message = body.get("message") or body.get("error_description")
        except ValueError:
            pass
        if response.status_code == 401:
            text = "Herald no longer accepts this printer's key (revoked or printer removed): link the printer again."
        elif response.status_code == 404:
            text = f"Herald answered 404 to {what}: is the address right and does this Herald speak {API_PREFIX}?"
        elif response.status_code == 426:
            text = message or "Herald says this plugin is too old: update the Herald plugin."
        elif response.status_code == 429:
            text = f"Herald asks to slow down ({what})."
        else:
            text = f"Herald answered {response.status_code} to {what}" + (f": {message}" if message else ".")
        return HeraldError(text, status=response.status_code, code=code,
                           retry_after=_retry_after(response.headers.get("Retry-After")))

    # -- the contract -----------------------------------------------------------------
    def health(self) -> dict:
        response = self._request("GET", "/healthz", auth=False)
        if response.status_code != 200:
            raise self._fail(response, "the health check")
        try:
            return response.json()
        except ValueError:
            raise HeraldError("That address answers, but not like Herald (no JSON from /healthz).") from None

    def start_link(self, printer_name: str) -> dict:
        response = self._request("POST", f"{API_PREFIX}/link", auth=False, json={"printer_name": printer_name})
        if response.status_code not in (200, 201):
            raise self._fail(response, "the link request")
        return response.json()

    def poll_link(self, device_code: str) -> dict:
        """200 -> ``{"printer_id", "printer_key"}``; a pending answer -> ``{"error": ...}``."""
        # A fresh connection per poll: a kept-alive one may be closed by the server just as
        # the poll goes out, and then the answer with the key is lost.
        response = self._request("POST", f"{API_PREFIX}/link/token", auth=False, json={"device_code": device_code},
                                 headers={"Connection": "close"})
        if response.status_code == 200:
            try:
                answer = response.json()
            except ValueError:
                raise HeraldError("Herald's answer to the link poll is not JSON.", status=200) from None
            if not isinstance(answer, dict) or not str(answer.get("printer_key") or "").startswith("hpk_"):
                raise HeraldError("Herald's answer to the link poll has no printer key.", status=200)
            return answer
        if response.status_code == 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            if body.get("error") in ("authorization_pending", "slow_down", "expired_token", "access_denied"):
                return {"error": body["error"]}
        raise self._fail(response, "the link poll")

    def verify_key(self) -> dict:
        response = self._request("POST", f"{API_PREFIX}/printer/verify", json={"plugin_version": __version__})
        if response.status_code != 200:
            raise self._fail(response, "the key check")
        return response.json()

    def unlink(self) -> None:
        response = self._request("DELETE", f"{API_PREFIX}/printer")
        if response.status_code not in (200, 204, 401):
            raise self._fail(response, "the unlink")

    def import_webhooks(self, hooks: list) -> dict:
        """Herald creates a webhook per OctoPrint-Webhooks hook; its answer names each result."""
        response = self._request("POST", f"{API_PREFIX}/printer/webhooks/import", json={"hooks": hooks})
        if response.status_code != 200:
            raise self._fail(response, "the webhook import")
        return response.json()

    def goodbye(self) -> None:
        """Tell Herald that OctoPrint is shutting down cleanly: the printer shows offline at once."""
        response = self._request("POST", f"{API_PREFIX}/printer/offline", json={"reason": "octoprint_shutdown"},
                                 timeout=(2.0, 3.0))
        if not 200 <= response.status_code < 300:
            raise self._fail(response, "the shutdown notice")

    def put_status(self, status: dict) -> None:
        response = self._request("PUT", f"{API_PREFIX}/printer/status", json=status)
        if not 200 <= response.status_code < 300:
            raise self._fail(response, "the status update")

    def post_event(self, event: dict, snapshot: bytes | None = None) -> None:
        if snapshot:
            files = {
                "event": ("event.json", json.dumps(finite(event)), "application/json"),
                "snapshot": ("snapshot.jpg", snapshot, "image/jpeg"),
            }
            response = self._request("POST", f"{API_PREFIX}/printer/events", files=files)
        else:
            response = self._request("POST", f"{API_PREFIX}/printer/events", json=event)
        if not 200 <= response.status_code < 300:
            raise self._fail(response, f"the {event.get('type')} event")

    def put_picture(self, kind: str, data: bytes, job_file: str | None = None) -> None:
        """The job's thumbnail or a webcam snapshot, for Herald's card and printer page."""
        media_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        headers = {"Content-Type": media_type}
        if job_file:
            headers["X-Herald-Job-File"] = quote(job_file, safe="")
        response = self._request("PUT", f"{API_PREFIX}/printer/pictures/{kind}", data=data, headers=headers)
        if not 200 <= response.status_code < 300:
            raise self._fail(response, f"the {kind} picture")

    def fetch_snapshot(self, url: str, limit: int = 2 * 1024 * 1024) -> bytes | None:
        """A JPEG from the local webcam, or None when there is none (never raises)."""
        try:
            response = self.session.get(url, timeout=(3.0, 5.0), stream=True)
            if response.status_code != 200:
                return None
            data = response.raw.read(limit + 1, decode_content=True)
            return data if 0 < len(data) <= limit else None
        except (requests.exceptions.RequestException, OSError):
            return None


_REASONS = (
    ("Connection refused", "connection refused: is Herald running there?"),
    ("Name or service not known", "that host name is unknown"),
    ("Failed to resolve", "that host name is unknown"),
    ("No route to host", "no route to that host"),
    ("Network is unreachable", "the network is unreachable"),
    ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"),
)


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from Herald, the backoff applies
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _reason(exc: Exception) -> str:
    """The gist of a requests exception, in words a user can act on."""
    text = str(exc)
    for needle, words in _REASONS:
        if needle in text:
            return words
    return text if len(text) < 160 else text[:160] + "..."


def finite(value):
    """``value`` with NaN and infinities replaced by None: JSON has no such numbers, and
    Herald refuses them (422), which would drop the whole status or event over one odd
    reading (a firmware reporting "nan" for an unplugged thermistor, say)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):  # noqa: UP038 - the plugin runs on Python 3.9 too
        return [finite(item) for item in value]
    return value
