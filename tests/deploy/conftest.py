"""Fixtures for the deploy tests: the container engine and the built image."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.deploy import debian
from tests.deploy.podman import Engine, host_ca_bundle, host_pip_index_config

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/herald:deploy-test"


def artifacts_dir() -> Path:
    path = Path(os.environ.get("HERALD_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "deploy"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    assert not missing, f"missing {', '.join(missing)}: .ci/run installs them (apt-get install ...)"
    assert os.geteuid() == 0, "the deploy tests need root (debootstrap, chroot, rootful podman)"


@pytest.fixture(scope="session")
def cache_lock():
    """Held for the whole session: another run on this machine waits for the shared cache."""
    with debian.cache_lock():
        yield


@pytest.fixture(scope="session")
def engine(cache_lock) -> Engine:
    require_tools("buildah", "podman", "runc", "debootstrap", "slirp4netns")
    engine = Engine.create()
    engine.remove_stale_containers()
    engine.ensure_base_image()
    return engine


def build_herald_image(engine: Engine, tag: str, log_name: str) -> float:
    """The Dockerfile built with buildah (Docker format), with this machine's CA and index.

    Returns the seconds it took (with the layer cache, a build of unchanged inputs is quick).
    """
    log = artifacts_dir() / log_name
    log.write_text("")
    command = ["buildah", "bud", "--format", "docker", "--layers", "--pull=false",
               "--network", "host", "--arch", engine.arch, "--tag", tag]
    for limit in engine.ulimits:
        command += ["--ulimit", limit]
    ca = host_ca_bundle()
    if ca is not None:
        command += ["--secret", f"id=ca,src={ca}"]
    pip_conf = host_pip_index_config()
    if pip_conf:
        conf_file = engine.conf_dir / "pip-build.conf"
        conf_file.write_text(pip_conf)
        command += ["--secret", f"id=pipconf,src={conf_file}"]
    started = time.monotonic()
    # Under emulation (another architecture) pip runs many times slower.
    engine.run(*command, str(ROOT), timeout=900 if engine.arch == "amd64" else 2400, log=log)
    elapsed = time.monotonic() - started
    # Intermediate images are the layer cache (the build stage's too); only those not
    # touched for a week go, so that layers of old builds do not pile up in the cache.
    engine.podman("image", "prune", "-f", "--filter", "until=168h", check=False)
    return elapsed


@pytest.fixture(scope="session")
def herald_image(engine: Engine) -> str:
    elapsed = build_herald_image(engine, IMAGE, "build.log")
    size = int(engine.podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip())
    base = int(engine.podman("image", "inspect", "docker.io/library/debian:bookworm-slim",
                             "--format", "{{.Size}}").stdout.strip())
    (artifacts_dir() / "image-size.txt").write_text(
        f"image {size / 1e6:.1f} MB, of which base {base / 1e6:.1f} MB and Herald's layers "
        f"{(size - base) / 1e6:.1f} MB; build took {elapsed:.0f} s\n"
    )
    return IMAGE


@pytest.fixture(scope="session")
def engine_arm64(cache_lock) -> Engine:
    require_tools("buildah", "podman", "runc", "debootstrap", "slirp4netns")
    debian.ensure_binfmt("arm64")
    engine = Engine.create("arm64")
    engine.remove_stale_containers()
    engine.ensure_base_image()
    return engine


@pytest.fixture(scope="session")
def herald_image_arm64(engine_arm64: Engine) -> str:
    """The same Dockerfile for linux/arm64, built here under qemu-user emulation."""
    elapsed = build_herald_image(engine_arm64, IMAGE, "build-arm64.log")
    size = int(engine_arm64.podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip())
    (artifacts_dir() / "image-size-arm64.txt").write_text(
        f"arm64 image {size / 1e6:.1f} MB; build took {elapsed:.0f} s\n")
    return IMAGE
