"""image/install.sh on a fresh Debian 12 root (debootstrap, chroot), run twice: install, upgrade."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.deploy import debian
from tests.deploy.browser import Browser, free_port
from tests.deploy.conftest import ROOT, artifacts_dir, require_tools
from tests.deploy.podman import host_ca_bundle, host_pip_index_config

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "pi@example.com"
ADMIN_PASSWORD = "a long enough pi password"
SOURCE_IN_ROOT = "/usr/src/herald"
CA_IN_ROOT = "/usr/local/share/host-ca.pem"
_IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "build", "dist", "*.egg-info", "__pycache__",
                                 "test-artifacts", "node_modules", ".pytest_cache", ".ruff_cache")


class Chroot:
    """A Debian root to run commands in, with /proc, /dev and caches mounted in a private
    mount namespace (the mounts vanish with the command), sharing this machine's network."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "DEBIAN_FRONTEND": "noninteractive",
        }
        ca = host_ca_bundle()
        if ca is not None:  # a TLS-intercepting proxy's CA, as a user behind one would set it
            (root / CA_IN_ROOT.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ca, root / CA_IN_ROOT.lstrip("/"))
            self.env["PIP_CERT"] = CA_IN_ROOT
        conf = host_pip_index_config()
        if conf:
            (root / "etc/pip.conf").write_text(conf)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")

    def _script(self, command: list[str]) -> list[str]:
        cache = debian.cache_dir()
        mounts = [
            f"mount -t proc proc {self.root}/proc",
            f"mount --rbind /dev {self.root}/dev",
        ]
        for name, inside in (("pip", "root/.cache/pip"), ("apt-archives", "var/cache/apt/archives")):
            (cache / name / "partial").mkdir(parents=True, exist_ok=True)
            (self.root / inside).mkdir(parents=True, exist_ok=True)
            mounts.append(f"mount --bind {cache / name} {self.root / inside}")
        script = " && ".join(mounts) + " && exec chroot " + shlex.join([str(self.root), *command])
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def run(self, *command: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        with open(self.log, "ab") as out:
            out.write(f"\n$ {shlex.join(command)}\n".encode())
            out.flush()
            result = subprocess.run(self._script(list(command)), env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{shlex.join(command)} failed ({result.returncode}):\n"
                                 + self.log.read_text(errors="replace")[-5000:])
        return result

    def output(self, *command: str) -> str:
        result = subprocess.run(self._script(list(command)), env=self.env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def popen(self, *command: str, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(self._script(list(command)), env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


@pytest.fixture(scope="module")
def debian_root(cache_lock, tmp_path_factory) -> Path:
    require_tools("debootstrap", "unshare", "chroot")
    # A fresh Debian 12 as a Raspberry Pi OS or server install has it: systemd, Python 3.
    tarball = debian.rootfs_tarball("system", include=["systemd", "systemd-sysv", "python3"])
    root = tmp_path_factory.mktemp("debian") / "root"
    debian.unpack(tarball, root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _copy_source(root: Path, version: str | None = None) -> None:
    target = root / SOURCE_IN_ROOT.lstrip("/")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT, target, ignore=_IGNORE, symlinks=True)
    if version is not None:  # the next release: a new version number
        init = target / "appliance/__init__.py"
        text = init.read_text()
        init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', text))


def _set_env(root: Path, key: str, value: str) -> None:
    env_file = root / "etc/herald/herald.env"
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith(f"{key}=")]
    env_file.write_text("\n".join([*lines, f"{key}={value}"]) + "\n")


def test_install_script_installs_and_upgrades_in_place(debian_root: Path):
    root = debian_root
    log = artifacts_dir() / "install.log"
    log.write_text("")
    chroot = Chroot(root, log)

    _copy_source(root)
    chroot.run("bash", f"{SOURCE_IN_ROOT}/image/install.sh", timeout=900)

    # What the script promised: user, venv, data directory, settings, unit, command.
    passwd = (root / "etc/passwd").read_text()
    herald_line = next(line for line in passwd.splitlines() if line.startswith("herald:"))
    uid = int(herald_line.split(":")[2])
    assert 0 < uid < 1000, herald_line  # a system user
    assert (root / "opt/herald/bin/herald").is_file()
    assert (root / "var/lib/herald").stat().st_uid == uid
    env_file = root / "etc/herald/herald.env"
    assert env_file.stat().st_mode & 0o007 == 0  # not world-readable: it may hold secrets
    assert (root / "etc/systemd/system/herald.service").is_file()
    assert (root / "etc/systemd/system/multi-user.target.wants/herald.service").is_symlink()
    assert os.access(root / "usr/local/bin/herald", os.X_OK)

    # systemd accepts the unit as installed (its ExecStart binary and user exist there).
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                             "/etc/systemd/system/herald.service"],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "herald.service" not in verify.stderr, verify.stderr

    # Without --caddy Herald serves the LAN, and its links name this machine.
    settings = env_file.read_text().splitlines()
    assert "HERALD_HOST=0.0.0.0" in settings
    assert any(re.fullmatch(r"HERALD_PUBLIC_URL=http://\S+:8080", line) for line in settings), settings

    # A person edits the settings file (here: loopback only, a free port), then starts
    # Herald as the service would.
    port = free_port()
    _set_env(root, "HERALD_PORT", str(port))
    _set_env(root, "HERALD_HOST", "127.0.0.1")
    browser = Browser(f"http://127.0.0.1:{port}")
    server_log = artifacts_dir() / "install-server.log"
    server_log.write_text("")
    server = chroot.popen("/usr/local/bin/herald", "serve", log=server_log)
    try:
        health = browser.wait_healthy(timeout=60, process_alive=lambda: server.poll() is None)
        assert health["status"] == "ok"
        owner = root / "var/lib/herald/herald.sqlite3"
        assert owner.stat().st_uid == uid  # written by the herald user, not root
        # Every step from unshare to python execs: the pid is Herald's, running as herald.
        status = Path(f"/proc/{server.pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == [str(uid)] * 4, status
        chroot.run("/usr/local/bin/herald", "create-admin", "--email", ADMIN_EMAIL,
                   "--password", ADMIN_PASSWORD)
        browser.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        # The installed Herald serves the OctoPrint plugin (its sources ship in Herald's wheel).
        code, headers, body = browser.request("GET", "/plugin/octoprint-herald.zip")
        content_type = {name.lower(): value for name, value in headers.items()}.get("content-type")
        assert code == 200 and content_type == "application/zip", body[:500]
        assert "OctoPrint-Herald/octoprint_herald/__init__.py" in body  # zip entry names are plain text
        chroot.run("/usr/local/bin/herald", "backup", "/var/lib/herald/backups/before-upgrade.sqlite3")
        backup = root / "var/lib/herald/backups/before-upgrade.sqlite3"
        assert backup.stat().st_uid == uid
        # Password hashes and encrypted secrets: not for other users of the machine to read,
        # wherever the person puts the file (here: even in a world-readable directory).
        assert backup.stat().st_mode & 0o077 == 0, oct(backup.stat().st_mode)
        chroot.run("/usr/local/bin/herald", "backup", "/tmp/anywhere.sqlite3")
        assert (root / "tmp/anywhere.sqlite3").stat().st_mode & 0o077 == 0
    finally:
        assert _stop(server) == 0, server_log.read_text()

    # The next release over the same install: data and the edited settings survive.
    _copy_source(root, version="99.0.0")
    chroot.run("bash", f"{SOURCE_IN_ROOT}/image/install.sh", timeout=900)
    assert f"HERALD_PORT={port}" in env_file.read_text()
    server = chroot.popen("/usr/local/bin/herald", "serve", log=server_log)
    try:
        health = browser.wait_healthy(timeout=60, process_alive=lambda: server.poll() is None)
        assert health["version"] == "99.0.0", health
        fresh = Browser(browser.base_url)
        fresh.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    finally:
        assert _stop(server) == 0, server_log.read_text()
    (artifacts_dir() / "install-health.json").write_text(json.dumps(health))
