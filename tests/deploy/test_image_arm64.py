"""The Dockerfile for linux/arm64 (a 64-bit Raspberry Pi), built and run here under emulation.

buildah builds it with --arch arm64 from an arm64 Debian root (debootstrap), every arm64
program running under qemu-user-static through binfmt_misc; podman runs the result the
same way. What docker buildx --platform linux/amd64,linux/arm64 does, one platform at a time.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.deploy.podman import Engine
from tests.deploy.test_image import Container

pytestmark = pytest.mark.slow


def test_arm64_image_is_arm64_and_answers_healthz(engine_arm64: Engine, herald_image_arm64: str):
    engine = engine_arm64
    inspect = json.loads(engine.podman("image", "inspect", herald_image_arm64).stdout)[0]
    assert inspect["Architecture"] == "arm64" and inspect["Os"] == "linux"
    # The programs in it are arm64 programs (this machine runs them only through qemu).
    machine = engine.podman("run", "--rm", "--network", "none", "--entrypoint", "python3",
                            herald_image_arm64, "-c", "import platform; print(platform.machine())",
                            timeout=120).stdout.strip()
    assert machine == "aarch64"
    cryptography = engine.podman(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", herald_image_arm64, "-c",
        "ls /opt/herald/lib/python3*/site-packages/cryptography/hazmat/bindings/", timeout=120).stdout
    assert "_rust.abi3.so" in cryptography  # the binary wheel, not a build from source

    volume = f"herald-deploy-test-{uuid.uuid4().hex[:8]}"
    engine.podman("volume", "create", volume)
    container = Container(engine, herald_image_arm64, volume)
    try:
        # Emulated, Herald takes a while to import; the container's own health check agrees.
        container.start_timeout = 300
        container.start()
        health = container.browser.wait_healthy(timeout=30)
        assert health["status"] == "ok"
        check = engine.podman("healthcheck", "run", container.name, check=False, timeout=120)
        assert check.returncode == 0, f"HEALTHCHECK failed: {check.stdout} {check.stderr}"
        assert "/setup/" in container.logs()  # a fresh volume: the one-time setup link
    finally:
        container.remove()
        engine.podman("volume", "rm", "-f", volume, check=False)
