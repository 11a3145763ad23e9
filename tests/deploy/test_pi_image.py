"""The Raspberry Pi SD-card image: built by scripts/build-pi-image, then booted as a Pi user would.

The user's path: flash the card, put herald-wifi.txt (and an SSH key) on its boot
partition, switch on, read herald-setup.txt from the card, open the link, create the
admin, link a printer. Then the documented update: a newer Herald with install.sh, data
kept. The boot is QEMU's virt machine, not a Pi, with the image's own kernel and initrd
(tests/deploy/pi.py); the Pi's own firmware and Wi-Fi hardware are not here to test.

The build is cached (scripts/build-pi-image keys it by its inputs), so a run that changed
nothing in image/ or Herald's code reuses the image; docs/benchmarks.md has the cold figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.deploy import pi
from tests.deploy.browser import Browser
from tests.deploy.conftest import ROOT, artifacts_dir, require_tools
from tests.deploy.podman import host_ca_bundle, host_pip_index_config
from tests.deploy.test_image import STATUS

# Opt-in for now: with warm caches the flash-boot-update walk takes about 18 minutes under
# emulation, and a change to Herald's code rebuilds the image's Herald layer first (about 18
# more), which together with tests/deploy's other 14 minutes and the rest of the suite breaks
# CI's 45-minute budget. Run it with HERALD_TEST_PI_IMAGE=1 ./scripts/test tests/deploy/test_pi_image.py
# (docs/deploy.md); making it fit CI is what keeps issue 18 open.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("HERALD_TEST_PI_IMAGE") != "1",
                       reason="the Raspberry Pi image boot test is opt-in: set HERALD_TEST_PI_IMAGE=1"),
]

ADMIN_EMAIL = "owner@example.com"
ADMIN_PASSWORD = "a long enough card-reader password"
CARD_BYTES = 4 * 2**30  # the card the image is flashed to: bigger than the image
WIFI_PASSWORD = "correct horse battery staple"
_SOURCES = ["pyproject.toml", "README.md", "appliance", "skill", "plugin", "image"]


@pytest.fixture(scope="module")
def pi_image(tmp_path_factory) -> dict:
    require_tools("debootstrap", "qemu-aarch64-static", "mcopy", "mkfs.vfat", "sfdisk", "mke2fs", "xz")
    out = tmp_path_factory.mktemp("pi-image")
    log = artifacts_dir() / "pi-build.log"
    with open(log, "wb") as handle:
        result = subprocess.run([str(ROOT / "scripts/build-pi-image"), "--output", str(out), "--raw", "--json"],
                                stdout=subprocess.PIPE, stderr=handle, timeout=5400)
    assert result.returncode == 0, log.read_text(errors="replace")[-5000:]
    built = json.loads(result.stdout.decode().strip().splitlines()[-1])
    # Up to date with bookworm, -updates and -security when built; every package written down.
    assert built["pending_updates"] == 0, built
    packages = Path(built["packages"]).read_text().splitlines()
    assert any(line.startswith("linux-image-arm64 ") for line in packages), packages[:20]
    (artifacts_dir() / "pi-build.json").write_text(json.dumps(built, indent=1))
    yield built
    shutil.rmtree(out, ignore_errors=True)


def test_image_carries_no_device_secrets_and_boots_as_a_pi(pi_image: dict, tmp_path: Path):
    image = Path(pi_image["image"])
    assert Path(pi_image["image_xz"]).name == f"herald-{_version()}-arm64.img.xz"
    boot, root = pi.partitions(image)
    assert boot.type == "c" and root.type == "83"  # FAT32 (LBA) for the Pi's firmware, then Linux

    # The boot partition as Debian's raspi-firmware makes it, for the Pi 3 and 4.
    files = pi.boot_files(image)
    for wanted in ("config.txt", "cmdline.txt", "start4.elf", "bootcode.bin", "bcm2837-rpi-3-b.dtb",
                   "bcm2837-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb", "herald-wifi.txt.example"):
        assert wanted in files, (wanted, files)
    assert any(name.startswith("vmlinuz-") for name in files)
    assert any(name.startswith("initrd.img-") for name in files)
    cmdline = pi.read_boot_file(image, "cmdline.txt").decode()
    assert "root=LABEL=RASPIROOT" in cmdline
    config = pi.read_boot_file(image, "config.txt").decode()
    assert "arm_64bit=1" in config

    rootfs = pi.RootFs(image, tmp_path / "root.ext4")
    # Made on the device, never in the image: host keys, Herald's key, the machine id.
    assert not [name for name in rootfs.listing("/etc/ssh") if name.startswith("ssh_host_")]
    assert rootfs.listing("/var/lib/herald") in ([], [".", ".."]) or \
        "secret.key" not in rootfs.listing("/var/lib/herald")
    assert rootfs.read("/etc/machine-id").strip() == ""
    assert rootfs.read("/etc/hostname").strip() == "herald"
    # Herald as install.sh sets it up: the hardened unit, enabled; the LAN as herald.local.
    assert rootfs.exists("/etc/systemd/system/multi-user.target.wants/herald.service")
    assert "ProtectSystem=strict" in rootfs.read("/etc/systemd/system/herald.service")
    settings = rootfs.read("/etc/herald/herald.env").splitlines()
    assert "HERALD_PUBLIC_URL=http://herald.local:8080" in settings and "HERALD_HOST=0.0.0.0" in settings
    assert rootfs.exists("/opt/herald/bin/herald")
    assert not rootfs.exists("/etc/pip.conf")  # the build machine's settings stay there
    rootfs.path.unlink()


def _version() -> str:
    return re.search(r'__version__ = "([^"]+)"', (ROOT / "appliance/__init__.py").read_text()).group(1)


def _wait_for(predicate, timeout: float, what: str, vm: pi.VirtualPi, step: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert vm.running(), "QEMU exited:\n" + vm.console.read_text(errors="replace")[-3000:]
        time.sleep(step)
    raise AssertionError(f"{what} within {timeout} s:\n" + vm.console.read_text(errors="replace")[-3000:])


def _next_release(dest: Path, version: str) -> Path:
    """A newer Herald as a person copies it to the Pi: the release's sources, as a tarball."""
    tree = dest / "herald-next"
    tree.mkdir()
    for name in _SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc",
                                                                               "*.egg-info"))
        else:
            shutil.copy(source, tree / name)
    init = tree / "appliance/__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text()))
    tarball = dest / "herald-next.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname="herald-next")
    return tarball


def test_flash_boot_set_up_link_and_update(pi_image: dict, tmp_path: Path):
    require_tools("qemu-system-aarch64", "ssh", "ssh-keygen", "mtype")
    # The card: the image written to a bigger card, with what a person adds on their computer.
    card = tmp_path / "card.img"
    subprocess.run(["cp", "--sparse=always", pi_image["image"], str(card)], check=True)
    image_size = card.stat().st_size
    subprocess.run(["truncate", "-s", str(CARD_BYTES), str(card)], check=True)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pi.write_boot_file(card, "authorized_keys", (tmp_path / "id_ed25519.pub").read_bytes(), tmp_path)
    pi.write_boot_file(card, "herald-wifi.txt",
                       f"ssid=Workshop\r\npassword={WIFI_PASSWORD}\r\ncountry=gb\r\n".encode(), tmp_path)

    console = artifacts_dir() / "pi-console.log"
    vm = pi.VirtualPi(card, tmp_path, key, console)
    figures: dict[str, float | int | str] = {"image_bytes": image_size}
    started = time.monotonic()
    vm.start()
    try:
        herald = Browser(f"http://127.0.0.1:{vm.http_port}")
        health = herald.wait_healthy(timeout=1800, process_alive=vm.running)
        figures["boot_to_healthz_s"] = round(time.monotonic() - started, 1)
        assert health["status"] == "ok" and health["version"] == _version()
        vm.wait_ssh(timeout=600)

        # First boot, on the device: the root grew to the card, keys were made here.
        assert vm.out("systemctl is-active herald.service").strip() == "active"
        assert vm.out("systemctl show -p User --value herald.service").strip() == "herald"
        root_bytes = int(vm.out("lsblk --bytes --noheadings --nodeps --output SIZE /dev/vda2"))
        assert root_bytes > CARD_BYTES - 600 * 2**20, root_bytes  # the boot partition and a margin
        fs_bytes = int(vm.out("df --block-size=1 --output=size / | tail -n 1"))
        assert fs_bytes > CARD_BYTES - 800 * 2**20, fs_bytes
        assert vm.out("test -s /var/lib/herald-firstboot/done && echo done").strip() == "done"
        assert vm.out("ls /etc/ssh/ssh_host_ed25519_key").strip()
        key_mode = vm.out("stat -c '%a %U' /var/lib/herald/secret.key").split()
        assert key_mode == ["600", "herald"], key_mode
        secret_before = vm.out("sha256sum /var/lib/herald/secret.key").split()[0]
        assert vm.out("hostname").strip() == "herald"
        # herald.local announced over mDNS (avahi), and resolvable on the LAN's link.
        _wait_for(lambda: "herald.local" in vm.out("journalctl -b -u avahi-daemon --no-pager", check=False),
                  300, "avahi did not announce herald.local", vm)
        # The journal names herald.local before avahi has registered its address records (its
        # probing takes seconds, longer on a loaded machine): ask until it answers.
        answers: list[str] = []

        def resolved() -> bool:
            answers.append(vm.out("avahi-resolve --name -4 herald.local 2>&1", check=False, timeout=120))
            return answers[-1].startswith("herald.local")

        try:
            _wait_for(resolved, 300, "avahi did not resolve herald.local", vm, step=5)
        except AssertionError:
            # What avahi itself said, not only the console: the last answers and its journal.
            raise AssertionError(
                "avahi did not resolve herald.local within 300 s; last answers: " + repr(answers[-3:])
                + "\navahi's journal:\n" + vm.out("journalctl -b -u avahi-daemon --no-pager", check=False)[-3000:]
                + "\naddresses:\n" + vm.out("ip -brief address", check=False)) from None
        # Wi-Fi from herald-wifi.txt: the network set, its passphrase hashed, the file gone.
        wpa = vm.out("cat /etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
        assert 'ssid="Workshop"' in wpa and "country=GB" in wpa and re.search(r"\bpsk=[0-9a-f]{64}\b", wpa)
        assert WIFI_PASSWORD not in wpa
        assert vm.out("stat -c %a /etc/wpa_supplicant/wpa_supplicant-wlan0.conf").strip() == "600"

        # The setup code, from the card's boot partition (any computer reads FAT).
        setup = _wait_for(lambda: pi.read_boot_file(card, "herald-setup.txt"), 600,
                          "no herald-setup.txt on the boot partition", vm)
        (artifacts_dir() / "herald-setup.txt").write_bytes(setup)  # scripts/pi-screenshots shows it
        assert pi.read_boot_file(card, "herald-wifi.txt") is None  # the password left the card
        link = re.search(rb"http://herald\.local:8080(/setup/[A-Za-z0-9_-]+)", setup)
        assert link, setup
        path = link.group(1).decode()
        # The file is what `herald setup-link` prints on the device (the one hook; no log grepping).
        shown = vm.ssh("herald setup-link")
        assert shown.stdout.decode().strip() == link.group(0).decode()

        # The first stranger on the LAN: no admin without the code.
        stranger = Browser(herald.base_url)
        code, _, _ = stranger.request("GET", "/setup/" + "x" * 43)
        assert code == 404
        code, _, _ = stranger.request("POST", "/setup/" + "x" * 43,
                                      form={"email": "intruder@example.com", "password": "x" * 20})
        assert code in (400, 403, 404)
        # The owner, with the code from the card.
        token = herald.csrf(path)
        code, _, body = herald.request("POST", path, form={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                           "csrf_token": token})
        assert code == 302, body[:1000]
        code, _, _ = stranger.request("GET", path)
        assert code == 404  # used once, gone
        gone = vm.ssh("herald setup-link", check=False)
        assert gone.returncode == 3 and b"An admin account exists" in gone.stderr, gone
        vm.ssh("systemctl restart herald-setup-link.service", timeout=600)
        assert "herald-setup.txt" not in vm.out("ls /boot/firmware")  # the card forgets the code

        # A printer links (the plugin's device flow), the owner approves, it pushes status.
        plugin = Browser(herald.base_url)
        code, _, body = plugin.request("POST", "/api/v1/link", json_body={"printer_name": "Ender 3"})
        assert code == 201, body
        started_link = json.loads(body)
        token = herald.csrf("/link")
        code, _, page = herald.request("POST", "/link/decide", form={
            "user_code": started_link["user_code"], "decision": "approve", "csrf_token": token})
        assert code == 200, page[:1000]
        code, _, body = plugin.request("POST", "/api/v1/link/token",
                                       json_body={"device_code": started_link["device_code"]})
        assert code == 200, body
        printer_key = json.loads(body)["printer_key"]
        code, _, body = plugin.request("PUT", "/api/v1/printer/status", json_body=STATUS,
                                       headers={"Authorization": f"Bearer {printer_key}"})
        assert code == 204, body
        csrf = herald.csrf("/webhooks/new")
        code, _, body = herald.request("POST", "/api/v1/webhooks", headers={"X-CSRF-Token": csrf},
                                       json_body={"name": "Workshop chat", "url": "https://example.com/hook"})
        assert code == 201, body

        # Memory of the whole idle system, and Herald's own (its service's processes).
        time.sleep(30)
        meminfo = dict(line.split(":", 1) for line in vm.out("cat /proc/meminfo").splitlines())
        total_kib = int(meminfo["MemTotal"].split()[0])
        available_kib = int(meminfo["MemAvailable"].split()[0])
        figures["system_used_mib"] = round((total_kib - available_kib) / 1024, 1)
        pids = vm.out("cat /sys/fs/cgroup/system.slice/herald.service/cgroup.procs").split()
        rss_kib = sum(int(vm.out(f"grep VmRSS /proc/{pid}/status").split()[1]) for pid in pids)
        figures["herald_rss_mib"] = round(rss_kib / 1024, 1)
        figures["herald_cgroup_mib"] = round(int(vm.out(
            "systemctl show -p MemoryCurrent --value herald.service")) / 2**20, 1)
        assert rss_kib < 120 * 1024, figures  # the target for Herald on the booted image

        # The documented update: the new release's sources onto the Pi, install.sh, apt.
        tarball = _next_release(tmp_path, "99.0.0")
        vm.send_file(tarball, "/root/herald-next.tar.gz")
        env = ""
        ca = host_ca_bundle()
        if ca is not None:  # this machine's TLS-intercepting proxy, as its user would set PIP_CERT
            vm.send_file(ca, "/root/build-ca.pem")
            env = "PIP_CERT=/root/build-ca.pem "
        conf = host_pip_index_config()
        if conf:
            vm.ssh("cat > /root/pip.conf", input=conf.encode())
            env += "PIP_CONFIG_FILE=/root/pip.conf "
        update_started = time.monotonic()
        update = vm.ssh(f"cd /root && tar -xzf herald-next.tar.gz && {env}bash herald-next/image/install.sh",
                        timeout=3600, check=False)
        (artifacts_dir() / "pi-update.log").write_bytes(update.stdout + update.stderr)
        assert update.returncode == 0, (update.stdout + update.stderr).decode(errors="replace")[-4000:]
        figures["update_s"] = round(time.monotonic() - update_started, 1)
        apt = vm.ssh("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get full-upgrade -y -q",
                     timeout=3600, check=False)
        (artifacts_dir() / "pi-apt.log").write_bytes(apt.stdout + apt.stderr)
        assert apt.returncode == 0, (apt.stdout + apt.stderr).decode(errors="replace")[-4000:]
        # The build brought the packages up to date; what is new here was published since it ran.
        upgraded = re.search(rb"^(\d+) upgraded, (\d+) newly installed", apt.stdout, re.M)
        figures["apt_upgraded_after_build"] = int(upgraded.group(1)) if upgraded else -1

        health = herald.wait_healthy(timeout=600, process_alive=vm.running)
        assert health["version"] == "99.0.0"
        assert vm.out("sha256sum /var/lib/herald/secret.key").split()[0] == secret_before
        assert "HERALD_PUBLIC_URL=http://herald.local:8080" in vm.out("cat /etc/herald/herald.env")
        again = Browser(herald.base_url)
        again.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        code, _, body = again.request("GET", "/api/v1/printers")
        [printer] = json.loads(body)["printers"]
        assert printer["name"] == "Ender 3" and printer["status"]["job"]["file"] == "benchy.gcode"
        code, _, body = again.request("GET", "/api/v1/webhooks")
        assert code == 200 and "Workshop chat" in body
        code, _, body = plugin.request("POST", "/api/v1/printer/verify", json_body={},
                                       headers={"Authorization": f"Bearer {printer_key}"})
        assert code == 200, body  # the printer's key still works: no relinking after an update
    finally:
        (artifacts_dir() / "pi-figures.json").write_text(json.dumps(figures, indent=1))
        vm.poweroff()
        vm.kill()


def test_build_is_cached_by_its_inputs(pi_image: dict, tmp_path: Path):
    """A second build with nothing changed reuses the cached image (the CI budget relies on it)."""
    result = subprocess.run([str(ROOT / "scripts/build-pi-image"), "--output", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["image_key"] == pi_image["image_key"] and "image_s" not in again and "base_s" not in again
    digest = hashlib.sha256(Path(again["image_xz"]).read_bytes()).hexdigest()
    assert digest == hashlib.sha256(Path(pi_image["image_xz"]).read_bytes()).hexdigest()
