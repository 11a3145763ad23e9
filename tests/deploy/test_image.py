"""The Dockerfile, built and run as a self-hoster would: docker run with a volume."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest

from tests.deploy.browser import Browser, free_port
from tests.deploy.conftest import artifacts_dir
from tests.deploy.podman import NAME_PREFIX, Engine

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a long enough admin password"


@pytest.mark.slow
def test_image_config(engine: Engine, herald_image: str):
    inspect = json.loads(engine.podman("image", "inspect", herald_image).stdout)[0]
    config = inspect["Config"]
    assert config["User"] == "10001:10001"
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"] == ["herald"] and config["Cmd"] == ["serve"]  # exec form: PID 1
    assert inspect["Healthcheck"]["Test"][0] == "CMD"  # survived: the build used Docker's format
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HERALD_DATA_DIR"] == "/data"
    assert env["HERALD_HOST"] == "0.0.0.0" and env["HERALD_PORT"] == "8080"
    # No compiler or build tools in the image people run.
    tools = engine.podman("run", "--rm", "--network", "none", "--entrypoint", "sh", herald_image,
                          "-c", "command -v gcc cc make pip pip3 curl || true").stdout
    assert tools.strip() == ""


class Container:
    def __init__(self, engine: Engine, image: str, volume: str) -> None:
        self.engine = engine
        self.image = image
        self.volume = volume
        self.name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.browser = Browser(f"http://127.0.0.1:{self.port}")
        self.saved_logs = ""
        self.start_timeout = 90

    def start(self) -> Container:
        self.engine.podman("run", "-d", "--name", self.name, "--network", "slirp4netns",
                           "-p", f"127.0.0.1:{self.port}:8080", "-v", f"{self.volume}:/data",
                           "-e", f"HERALD_PUBLIC_URL=http://127.0.0.1:{self.port}",
                           self.image, timeout=60)
        try:
            self.browser.wait_healthy(timeout=self.start_timeout, process_alive=self.running)
        except AssertionError:
            raise AssertionError(self.logs()) from None
        return self

    def running(self) -> bool:
        state = self.engine.podman("inspect", self.name, "--format", "{{.State.Running}}", check=False)
        return state.stdout.strip() == "true"

    def exec(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.engine.podman("exec", self.name, *args, **kwargs)

    def logs(self) -> str:
        result = self.engine.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self) -> float:
        started = time.monotonic()
        self.engine.podman("stop", "-t", "20", self.name, timeout=60)
        return time.monotonic() - started

    def remove(self) -> None:
        if self.engine.podman("container", "exists", self.name, check=False).returncode == 0:
            self.saved_logs = self.logs()
            self.engine.podman("rm", "-f", "-t", "0", self.name, check=False)


@pytest.fixture
def volume(engine: Engine):
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
    engine.podman("volume", "create", name)
    yield name
    engine.podman("volume", "rm", "-f", name, check=False)


STATUS = {
    "state": "Printing", "state_id": "printing",
    "temperatures": {"tool0": {"actual": 210.1, "target": 210.0}, "bed": {"actual": 60.2, "target": 60.0}},
    "job": {"file": "benchy.gcode", "progress": 42.5, "print_time": 1234, "print_time_left": 2345, "z": 12.4},
}


def _printers(browser: Browser) -> list[dict]:
    code, _, body = browser.request("GET", "/api/v1/printers")
    assert code == 200, body
    return json.loads(body)["printers"]


@pytest.mark.slow
def test_container_keeps_its_data_when_replaced(engine: Engine, herald_image: str, volume: str,
                                                 tmp_path):
    first = Container(engine, herald_image, volume)
    second = Container(engine, herald_image, volume)
    second.port = first.port  # the same published address, as a user's docker run line would
    second.browser = Browser(first.browser.base_url)
    restored = Container(engine, herald_image, f"{volume}-restored")
    try:
        first.start()
        health = engine.podman("healthcheck", "run", first.name, check=False)
        assert health.returncode == 0, f"HEALTHCHECK failed: {health.stdout} {health.stderr}"

        # Herald itself is PID 1 (so SIGTERM reaches it), and it is not root.
        status = first.exec("cat", "/proc/1/status").stdout
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids and all(uid != "0" for uid in uids), status
        cmdline = [part for part in first.exec("cat", "/proc/1/cmdline").stdout.split("\0") if part]
        assert cmdline[-2:] == ["herald", "serve"] or cmdline[-1:] == ["serve"], cmdline
        owner = first.exec("stat", "-c", "%U", "/data/herald.sqlite3").stdout.strip()
        assert owner == "herald"

        # First run as the README tells it: the one-time setup link in the container's log.
        match = re.search(r"(http://\S+/setup/[A-Za-z0-9_-]+)", first.logs())
        assert match, f"no setup link in the log:\n{first.logs()}"
        link = match.group(1)
        assert link.startswith(first.browser.base_url), link  # built from HERALD_PUBLIC_URL
        path = link.removeprefix(first.browser.base_url)
        token = first.browser.csrf(path)
        code, headers, body = first.browser.request(
            "POST", path, form={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
        assert code == 302, body[:1000]

        # Add a printer in the web UI and push its status with the key, as the plugin does.
        token = first.browser.csrf("/printers/new")
        code, _, page = first.browser.request("POST", "/printers/new",
                                              form={"name": "Prusa MK4", "csrf_token": token})
        key = re.search(r'value="(hpk_[A-Za-z0-9_-]+)"', page)
        assert code == 200 and key, page[:1000]
        plugin = Browser(first.browser.base_url)
        code, _, body = plugin.request("PUT", "/api/v1/printer/status", json_body=STATUS,
                                       headers={"Authorization": f"Bearer {key.group(1)}"})
        assert code == 204, body
        [printer] = _printers(first.browser)
        assert printer["status"]["job"]["file"] == "benchy.gcode"
        # The plugin comes from the image itself: its sources ship in Herald's wheel.
        code, headers, body = plugin.request("GET", "/plugin/octoprint-herald.zip")
        content_type = {name.lower(): value for name, value in headers.items()}.get("content-type")
        assert code == 200 and content_type == "application/zip", body[:500]
        assert "OctoPrint-Herald/octoprint_herald/__init__.py" in body  # zip entry names are plain text

        # The documented backup: a consistent copy while Herald runs, then out of the
        # volume, with the key that encrypts Herald's stored secrets.
        first.exec("herald", "backup", "/data/backup.sqlite3")
        backup_dir = tmp_path / "backup"
        backup_dir.mkdir(mode=0o755)
        engine.podman("cp", f"{first.name}:/data/backup.sqlite3", str(backup_dir / "herald-backup.sqlite3"))
        engine.podman("cp", f"{first.name}:/data/secret.key", str(backup_dir / "herald-secret.key"))
        for item in backup_dir.iterdir():
            item.chmod(0o644)  # readable by the container's user for the restore below

        # SIGTERM: Herald shuts down cleanly, well before podman would resort to SIGKILL,
        # and saves the status it holds (pushed just now, likely before a periodic flush).
        latest = {**STATUS, "job": {**STATUS["job"], "progress": 43.5}}
        code, _, body = plugin.request("PUT", "/api/v1/printer/status", json_body=latest,
                                       headers={"Authorization": f"Bearer {key.group(1)}"})
        assert code == 204, body
        took = first.stop()
        exit_code = engine.podman("inspect", first.name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert exit_code == "0", first.logs()
        assert took < 15, f"stopping took {took:.1f} s: SIGTERM was not handled\n{first.logs()}"
        first.remove()

        second.start()
        assert "/setup/" not in second.logs()  # the admin exists: no new setup link
        second.browser.login(ADMIN_EMAIL, ADMIN_PASSWORD)  # the account outlived the container
        [kept] = _printers(second.browser)
        assert kept["name"] == "Prusa MK4" and kept["status"]["job"]["progress"] == 43.5
        assert kept["status"]["temperatures"] == printer["status"]["temperatures"]
        second.stop()
        second.remove()

        # The documented restore: the backup and the key into a new volume, a new container.
        engine.podman("volume", "create", restored.volume)
        engine.podman("run", "--rm", "--network", "none", "-v", f"{restored.volume}:/data",
                      "-v", f"{backup_dir}:/backup:ro", "--user", "10001:10001", "--entrypoint", "sh",
                      herald_image, "-c",
                      "cp /backup/herald-backup.sqlite3 /data/herald.sqlite3 && "
                      "cp /backup/herald-secret.key /data/secret.key && chmod 600 /data/secret.key")
        restored.start()
        restored.browser.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        [back] = _printers(restored.browser)
        assert back["name"] == "Prusa MK4"
    finally:
        for container in (first, second, restored):
            container.remove()
        engine.podman("volume", "rm", "-f", restored.volume, check=False)
        (artifacts_dir() / "container-logs.txt").write_text("".join(
            f"--- {c.name}\n{c.saved_logs}\n" for c in (first, second, restored)))


@pytest.mark.slow
def test_behind_a_host_proxy_the_container_sees_the_bridge_gateway(engine: Engine, herald_image: str):
    """docs/deploy.md, "Docker behind a reverse proxy on the host": with the port published
    on loopback only, a proxy on the host reaches the container from the bridge's gateway,
    not from 127.0.0.1, so that gateway is what HERALD_TRUSTED_PROXIES must name.

    Podman's bridge (CNI) stands in for Docker's; the container runs Python's own HTTP
    server from the image, which logs each client's address."""
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
    port = free_port()
    engine.podman("run", "-d", "--name", name, "--network", "bridge", "-p", f"127.0.0.1:{port}:8080",
                  "--entrypoint", "python3", herald_image, "-m", "http.server", "--bind", "0.0.0.0", "8080",
                  timeout=60)
    try:
        proxy = Browser(f"http://127.0.0.1:{port}")  # the host's proxy, connecting over loopback
        deadline = time.monotonic() + 60
        while True:
            try:
                code, _, _ = proxy.request("GET", "/", timeout=2)
                if code == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, engine.podman("logs", name, check=False).stderr
            time.sleep(0.5)
        logs = engine.podman("logs", name).stderr + engine.podman("logs", name).stdout
        seen = re.findall(r"^(\S+) - - \[.*\] \"GET / HTTP/1.1\" 200", logs, re.M)
        network = json.loads(engine.podman("network", "inspect", "podman").stdout)[0]
        gateways = [subnet["gateway"] for subnet in network["subnets"]]
        assert seen and set(seen) <= set(gateways), (seen, gateways, logs)
        assert "127.0.0.1" not in seen
        # Published on loopback only: nothing listens on the machine's other addresses.
        published = engine.podman("port", name).stdout.split()
        assert published == ["8080/tcp", "->", f"127.0.0.1:{port}"], published
    finally:
        engine.podman("rm", "-f", "-t", "0", name, check=False)
