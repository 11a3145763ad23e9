"""The real Herald under hypercorn, in a subprocess, as a user's program would meet it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LiveServer:
    """``herald serve`` on 127.0.0.1:<port>; start() waits for /healthz, stop() ends it."""

    data_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(
            HERALD_HOST="127.0.0.1",
            HERALD_PORT=str(self.port),
            HERALD_DATA_DIR=str(self.data_dir),
            HERALD_LOG_LEVEL="INFO",
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_path or self.data_dir / "server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve"],
            env=self.environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"herald serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"herald serve did not answer /healthz within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@contextlib.contextmanager
def serving_with_admin(data_dir: Path, port: int, email: str, password: str,
                       env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """``herald serve`` with an admin made by its own CLI (``create-admin``) first; stopped afterwards."""
    server = LiveServer(data_dir=data_dir, port=port, env=dict(env or {}))
    server.data_dir.mkdir(parents=True)
    made = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", email,
                           "--password", password], env=server.environ(), capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()
