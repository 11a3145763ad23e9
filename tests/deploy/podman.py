"""Debian's buildah and podman, set up by the tests' own configuration files.

No Docker engine here: buildah builds the Dockerfile (Docker image format, so
HEALTHCHECK survives) and podman runs it, both with runc and cgroupfs, events
in a file, and ulimits no higher than this machine's hard limits. Image storage
lives in the cache directory so the base image and build layers survive between
runs; run-time state lives on a tmpfs so a reboot clears it, as podman expects.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import debian

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
# Containers the tests start carry this prefix, so a run can clear what a crashed
# earlier run of these tests left behind (and nothing else).
NAME_PREFIX = "herald-deploy-test-"


def _tmpfs_dir() -> Path:
    for candidate in ("/run", "/dev/shm"):
        fstype = subprocess.run(["stat", "-f", "-c", "%T", candidate], capture_output=True, text=True)
        if fstype.stdout.strip() == "tmpfs":
            return Path(candidate) / "herald-deploy"
    return Path("/run/herald-deploy")


def _ulimits() -> list[str]:
    limits = []
    for name, which, ceiling in (("nofile", resource.RLIMIT_NOFILE, 65536),
                                 ("nproc", resource.RLIMIT_NPROC, 4096)):
        hard = resource.getrlimit(which)[1]
        value = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
        limits.append(f"{name}={value}:{value}")
    return limits


@dataclass
class Engine:
    """Environment and helpers for buildah and podman with the tests' configuration."""

    conf_dir: Path
    env: dict[str, str]
    ulimits: list[str]
    arch: str = "amd64"

    @classmethod
    def create(cls, arch: str = "amd64") -> Engine:
        """The engine for one architecture. Each has its own image storage, since both
        base images answer to the Dockerfile's one FROM name."""
        cache = debian.cache_dir()
        suffix = "" if arch == "amd64" else f"-{arch}"
        conf_dir = cache / f"conf{suffix}"
        conf_dir.mkdir(exist_ok=True)
        state = Path(f"{_tmpfs_dir()}{suffix}")
        ulimits = _ulimits()
        (conf_dir / "containers.conf").write_text(
            "[containers]\n"
            f"default_ulimits = {json.dumps(ulimits)}\n"
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{state}/events.log"\n'
            'runtime = "runc"\n'
            f'tmp_dir = "{state}/tmp"\n'
        )
        (conf_dir / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{cache}/storage{suffix}"\n'
            f'runroot = "{state}/run"\n'
        )
        (conf_dir / "registries.conf").write_text('unqualified-search-registries = ["docker.io"]\n')
        env = dict(os.environ)
        env.update(
            CONTAINERS_CONF=str(conf_dir / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(conf_dir / "storage.conf"),
            CONTAINERS_REGISTRIES_CONF=str(conf_dir / "registries.conf"),
        )
        return cls(conf_dir=conf_dir, env=env, ulimits=ulimits, arch=arch)

    def run(self, *args: str, timeout: float = 120, check: bool = True, log: Path | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
        if log is not None:
            with open(log, "ab") as out:
                result = subprocess.run(list(args), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        timeout=timeout)
            if check and result.returncode != 0:
                raise AssertionError(f"{' '.join(args[:3])} ... failed ({result.returncode}):\n"
                                     + log.read_text(errors="replace")[-4000:])
            return result
        result = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def podman(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("podman", *args, **kwargs)

    def image_exists(self, name: str) -> bool:
        return self.podman("image", "exists", name, check=False).returncode == 0

    def ensure_base_image(self) -> None:
        """Import the debootstrapped slim root as the Dockerfile's base image, once."""
        tarball = debian.rootfs_tarball("slim", slim=True, arch=self.arch)
        label = tarball.name
        if self.image_exists(BASE_IMAGE):
            inspect = self.podman("image", "inspect", BASE_IMAGE, "--format", "{{.Comment}}", check=False)
            if inspect.stdout.strip() == label:
                return
        self.podman("import", "--arch", self.arch, "--message", label, str(tarball), BASE_IMAGE, timeout=300)

    def remove_stale_containers(self) -> None:
        listed = self.podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        for name in listed:
            if name.startswith(NAME_PREFIX):
                self.podman("rm", "-f", "-t", "0", name, check=False)


def host_pip_index_config() -> str:
    """This machine's package-index settings for pip, as a pip.conf ('' when it has none).

    Only http(s) indexes count: file:// indexes and local find-links are paths on this
    machine, which a container build cannot see.
    """
    keys = {"index-url", "extra-index-url", "trusted-host"}
    values: dict[str, str] = {}
    listed = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if option in keys and section in ("global", "install", ":env:"):
            values[option] = value.strip().strip("'\"")
    for option in keys:
        env_value = os.environ.get("PIP_" + option.upper().replace("-", "_"))
        if env_value:
            values[option] = env_value
    lines = []
    for option, value in values.items():
        if option != "trusted-host":
            urls = [url for url in value.split() if url.startswith(("http://", "https://"))]
            if not urls:
                continue
            value = " ".join(urls)
        lines.append(f"{option} = {value}")
    if not any(line.startswith(("index-url", "extra-index-url")) for line in lines):
        return ""
    return "[global]\n" + "\n".join(lines) + "\n"


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine trusts (it may hold a TLS-intercepting proxy's CA)."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
