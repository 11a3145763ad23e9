"""A tiny cookie-keeping HTTP client over a real socket, as a person's browser would be."""

from __future__ import annotations

import http.cookiejar
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.cookies),
            NoRedirect(),
        )

    def request(self, method: str, path: str, *, form: dict | None = None, json_body=None,
                headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, str]:
        data = None
        headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode(errors="replace")

    def csrf(self, path: str) -> str:
        status, _, body = self.request("GET", path)
        match = _CSRF.search(body)
        assert status == 200 and match, f"no form with a CSRF token at {path} ({status}): {body[:500]}"
        return match.group(1)

    def login(self, email: str, password: str) -> None:
        token = self.csrf("/login")
        status, headers, body = self.request(
            "POST", "/login", form={"email": email, "password": password, "csrf_token": token}
        )
        assert status == 302, f"login refused ({status}): {body[:500]}"

    def wait_healthy(self, timeout: float = 90, process_alive=None) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                status, _, body = self.request("GET", "/healthz", timeout=2)
                if status == 200:
                    return json.loads(body)
                last = f"HTTP {status}: {body[:200]}"
            except OSError as exc:
                last = repr(exc)
            if process_alive is not None and not process_alive():
                raise AssertionError(f"Herald exited before answering /healthz (last: {last})")
            time.sleep(0.5)
        raise AssertionError(f"/healthz did not answer 200 within {timeout} s (last: {last})")
