"""A real OctoPrint (pip package ``octoprint``) with its Virtual Printer, in a subprocess.

The slow part of seeding a basedir (creating the admin user through OctoPrint's own CLI)
is done once per OctoPrint version and cached under ~/.cache; each test copies it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

ADMIN_USER = "admin"
ADMIN_PASSWORD = "octoprint-test-password"
API_KEY = "HERALDTESTAPIKEY0123456789ABCDEF"

# Bundled plugins that would phone home or pop up wizards; none matter to Herald's tests.
DISABLED_PLUGINS = ["announcements", "tracking", "softwareupdate", "pluginmanager", "achievements"]


def import_octoprint_quietly() -> None:
    """Import OctoPrint's modules without the socket its IPv6 probe leaves open.

    octoprint.util.net opens an IPv6 socket at import time and never closes it; under
    pytest's warnings-as-errors that unraisable ResourceWarning fails whichever test is
    running. Importing it once here, with the probe's socket closed, keeps the suite clean.
    """
    import sys

    if "octoprint.util.net" in sys.modules:
        return
    opened: list[socket.socket] = []
    real_socket = socket.socket

    class ClosingSocket(real_socket):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    socket.socket = ClosingSocket
    try:
        import octoprint.util.net  # noqa: F401 - imported for its side effect
    finally:
        socket.socket = real_socket
        for sock in opened:
            sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _octoprint_command() -> list[str]:
    return [str(Path(sys.executable).with_name("octoprint"))]


def base_config(plugin_settings: dict | None = None) -> dict:
    return {
        "server": {
            "firstRun": False,
            "onlineCheck": {"enabled": False},
            "pluginBlacklist": {"enabled": False},
            "seenWizards": {"corewizard": 4, "backup": None, "tracking": None},
        },
        "api": {"key": API_KEY},
        "accessControl": {"salt": "heraldtestsalt0123456789abcdefgh"},
        "serial": {
            "port": "VIRTUAL",
            "baudrate": 0,
            "autoconnect": True,
            "additionalPorts": [],
            # Lets the tests answer a firmware prompt (M600) while the firmware is busy.
            "emergencyCommands": ["M112", "M108", "M410", "M876"],
            "log": True,  # logs/serial.log: what the firmware said, for assertions and post-mortems
        },
        "plugins": {
            "_disabled": list(DISABLED_PLUGINS),
            "virtual_printer": {
                "enabled": True,
                "simulateReset": False,
                "throttle": 0.001,
                "sendBusy": True,
                "busyInterval": 1.0,
            },
            "herald": dict(plugin_settings or {}),
        },
        "temperature": {"cutoff": 30},
    }


def _seed_key() -> str:
    import octoprint

    material = f"{octoprint.__version__}|{ADMIN_USER}|{ADMIN_PASSWORD}|{sorted(base_config().items())!r}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def seeded_basedir() -> Path:
    """A basedir with config.yaml and the admin user, made once and cached under ~/.cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "herald-tests"
    target = cache / f"octoprint-basedir-{_seed_key()}"
    if (target / "users.yaml").exists():
        return target
    work = cache / f"{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "config.yaml").write_text(yaml.safe_dump(base_config()))
    subprocess.run(
        [*_octoprint_command(), "--basedir", str(work), "user", "add", ADMIN_USER,
         "--password", ADMIN_PASSWORD, "--admin"],
        check=True, capture_output=True, timeout=180,
    )
    assert (work / "users.yaml").exists(), "octoprint user add made no users.yaml"
    with contextlib.suppress(OSError):
        os.replace(work, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


@dataclass
class OctoPrintServer:
    """``octoprint serve`` on 127.0.0.1:<port> with a basedir copied from the seed."""

    basedir: Path
    port: int = field(default_factory=free_port)
    plugin_settings: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    # Another OctoPrint install (a venv of its own, see octoprint_venv) instead of the test environment.
    python: Path | None = None
    env: dict = field(default_factory=dict)
    # Bundled plugins to turn back on (e.g. "pluginmanager", "softwareupdate").
    enable_plugins: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.basedir / "logs" / "octoprint.log"

    def prepare(self) -> None:
        if not (self.basedir / "users.yaml").exists():
            shutil.copytree(seeded_basedir(), self.basedir, dirs_exist_ok=True)
        config_path = self.basedir / "config.yaml"
        config = yaml.safe_load(config_path.read_text()) or {}
        config.setdefault("plugins", {}).setdefault("herald", {}).update(self.plugin_settings)
        disabled = config["plugins"].get("_disabled") or []
        config["plugins"]["_disabled"] = [name for name in disabled if name not in self.enable_plugins]
        config_path.write_text(yaml.safe_dump(config))

    def start(self, timeout: float = 120.0) -> OctoPrintServer:
        self.prepare()
        console = open(self.basedir / "console.log", "ab")  # noqa: SIM115 - the child keeps it
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(self.env)
        command = [str(self.python), "-m", "octoprint"] if self.python else _octoprint_command()
        self.process = subprocess.Popen(
            [*command, "--basedir", str(self.basedir), "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--iknowwhatimdoing"],
            stdout=console, stderr=subprocess.STDOUT, env=env,
        )
        console.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"octoprint exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                response = self.api("GET", "/api/version", timeout=2)
                if response.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"octoprint did not answer within {timeout} s:\n{self.log()[-4000:]}")

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-Api-Key": API_KEY, **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 15)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def herald_command(self, command: str, timeout: float = 60.0, **data) -> dict:
        """A Herald plugin command as its settings page runs it: 202 at once, then the result
        (``{"status": "done", "result": ...}`` or ``{"status": "failed", "error": ...}``)."""
        response = self.api("POST", "/api/plugin/herald", json={"command": command, **data})
        assert response.status_code == 202, response.text
        entry = response.json()
        deadline = time.monotonic() + timeout
        while entry["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            entry = self.api("GET", "/api/plugin/herald", params={"command": entry["id"]}).json()
        assert entry["status"] != "running", f"the {command} command did not finish:\n{self.log()[-3000:]}"
        return entry

    def wait_operational(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.api("GET", "/api/connection")
            if response.ok and response.json()["current"]["state"] == "Operational":
                return
            if response.ok and response.json()["current"]["state"] in ("Closed", "Offline"):
                self.api("POST", "/api/connection", json={"command": "connect", "port": "VIRTUAL"})
            time.sleep(0.5)
        raise AssertionError(f"the virtual printer did not become operational:\n{self.log()[-3000:]}")

    def upload_and_print(self, name: str, gcode: str) -> None:
        response = self.api("POST", "/api/files/local", files={"file": (name, gcode.encode())},
                            data={"select": "true", "print": "true"})
        assert response.status_code == 201, response.text

    def job(self) -> dict:
        return self.api("GET", "/api/job").json()

    def log(self) -> str:
        parts = []
        for path in (self.basedir / "console.log", self.log_path):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


@contextlib.contextmanager
def running(server: OctoPrintServer, log_name: str):
    """The server started with its printer operational; stopped (and its log kept) afterwards."""
    server.start()
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()
        keep_log(server, log_name)


def keep_log(server: OctoPrintServer, name: str) -> None:
    """Copy OctoPrint's log to $HERALD_TEST_ARTIFACTS (CI keeps them), when set."""
    artifacts = os.environ.get("HERALD_TEST_ARTIFACTS")
    if artifacts and server.log_path.exists():
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        (Path(artifacts) / f"{name}-{server.port}.log").write_text(server.log())


def octoprint_venv(folder: Path) -> Path:
    """A virtualenv of its own for OctoPrint, without this plugin; returns its python.

    The venv gets its own pip (what OctoPrint's Plugin Manager and Software Update call) and
    sees the test environment's packages through a folder of links that leaves out Herald and
    this plugin, so pip finds no plugin installed until one is installed into the venv itself.
    """
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=180, capture_output=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    import sysconfig

    test_site = Path(sysconfig.get_path("purelib"))
    links = folder / "test-site-packages"
    links.mkdir()
    left_out = ("octoprint_herald", "herald-", "__editable__", "pip", "_virtualenv")
    for entry in test_site.iterdir():
        if entry.suffix == ".pth" or entry.name.lower().startswith(left_out):
            continue
        (links / entry.name).symlink_to(entry)
    # After the venv's own site-packages: what pip installs into the venv wins.
    Path(purelib, "zz_octoprint_from_tests.pth").write_text(f"{links}\n")
    return python


def offline_pip_env() -> dict[str, str]:
    """Environment for an OctoPrint whose pip can reach no package index (only Herald's URLs)."""
    return {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
