"""The Raspberry Pi image from the outside: its partitions, and booting it in qemu-system-aarch64.

No loop devices and no mounts: mtools reads and writes the FAT boot partition inside the
image file (``image@@offset``), debugfs reads the ext4 root from a copy of its partition.
The boot is QEMU's ``virt`` machine under software emulation (TCG) with the kernel and
initrd from the image's own boot partition, the root on a virtio disk, and user-mode
networking forwarding loopback ports to the guest's Herald (8080) and SSH (22).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.browser import free_port

SECTOR = 512


@dataclass
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str


def partitions(image: Path) -> list[Partition]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    return [Partition(number=index + 1, start=part["start"] * SECTOR, size=part["size"] * SECTOR,
                      type=part["type"]) for index, part in enumerate(table["partitions"])]


def fat(image: Path) -> str:
    """The mtools name of the image's boot partition."""
    return f"{image}@@{partitions(image)[0].start}"


def boot_files(image: Path) -> list[str]:
    listing = subprocess.run(["mdir", "-b", "-i", fat(image), "::/"], capture_output=True, text=True,
                             check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    return sorted(line.removeprefix("::/").strip() for line in listing.splitlines() if line.strip())


def read_boot_file(image: Path, name: str) -> bytes | None:
    result = subprocess.run(["mtype", "-i", fat(image), f"::/{name}"], capture_output=True,
                            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return result.stdout if result.returncode == 0 else None


def copy_boot_file(image: Path, name: str, dest: Path) -> None:
    subprocess.run(["mcopy", "-n", "-i", fat(image), f"::/{name}", str(dest)], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})


def write_boot_file(image: Path, name: str, data: bytes, tmp: Path) -> None:
    """What a person does with a card reader: put a file on the boot partition."""
    source = tmp / name
    source.write_bytes(data)
    subprocess.run(["mcopy", "-o", "-i", fat(image), str(source), f"::/{name}"], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})


class RootFs:
    """The image's ext4 root partition, copied out and read with debugfs."""

    def __init__(self, image: Path, dest: Path) -> None:
        part = partitions(image)[1]
        self.path = dest
        subprocess.run(["dd", f"if={image}", f"of={dest}", "bs=1M", f"skip={part.start // 2**20}",
                        f"count={part.size // 2**20}", "conv=sparse", "status=none"], check=True)

    def debugfs(self, request: str) -> str:
        result = subprocess.run(["debugfs", "-R", request, str(self.path)], capture_output=True, text=True,
                                check=True)
        return result.stdout + result.stderr

    def exists(self, path: str) -> bool:
        return "File not found" not in self.debugfs(f"stat {path}")

    def read(self, path: str) -> str:
        return subprocess.run(["debugfs", "-R", f"cat {path}", str(self.path)], capture_output=True,
                              text=True, check=True).stdout

    def listing(self, path: str) -> list[str]:
        out = self.debugfs(f"ls -l {path}")
        return [line.split()[-1] for line in out.splitlines()[1:] if line.strip()]


class VirtualPi:
    """The image booted in qemu-system-aarch64; Herald and SSH reachable on loopback ports."""

    def __init__(self, image: Path, work: Path, ssh_key: Path, console: Path, *, memory_mib: int = 1024):
        self.image = image
        self.work = work
        self.ssh_key = ssh_key
        self.console = console
        self.memory_mib = memory_mib
        self.http_port = free_port()
        self.ssh_port = free_port()
        self.process: subprocess.Popen | None = None

    def kernel_command_line(self) -> str:
        # cmdline.txt as raspi-firmware wrote it, with QEMU's serial console for the Pi's.
        words = (read_boot_file(self.image, "cmdline.txt") or b"").decode().split()
        words = [word for word in words if not word.startswith("console=")]
        return " ".join(["console=ttyAMA0", *words])

    def start(self) -> None:
        names = boot_files(self.image)
        kernel = max(name for name in names if name.startswith("vmlinuz-"))
        initrd = max(name for name in names if name.startswith("initrd.img-"))
        copy_boot_file(self.image, kernel, self.work / "vmlinuz")
        copy_boot_file(self.image, initrd, self.work / "initrd.img")
        command = [
            "qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a72", "-smp", "2",
            "-m", str(self.memory_mib), "-nographic", "-no-reboot",
            "-kernel", str(self.work / "vmlinuz"), "-initrd", str(self.work / "initrd.img"),
            "-append", self.kernel_command_line(),
            "-drive", f"file={self.image},format=raw,if=none,id=card,cache=writeback",
            "-device", "virtio-blk-pci,drive=card",
            "-netdev", f"user,id=lan,hostfwd=tcp:127.0.0.1:{self.http_port}-:8080,"
                       f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=lan,romfile=",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{self.console}", "-monitor", "none",
        ]
        with open(self.work / "qemu.stderr", "wb") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=stderr)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ssh(self, command: str, *, timeout: float = 300, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["ssh", "-i", str(self.ssh_key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.work / 'known_hosts'}",
             "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15", "root@127.0.0.1", command],
            capture_output=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {command!r} failed ({result.returncode}):\n"
                                 f"{result.stdout.decode(errors='replace')}\n{result.stderr.decode(errors='replace')}")
        return result

    def out(self, command: str, **kwargs) -> str:
        return self.ssh(command, **kwargs).stdout.decode()

    def wait_ssh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.running(), "QEMU exited:\n" + self.console.read_text(errors="replace")[-3000:]
            result = self.ssh("true", check=False, timeout=60)
            if result.returncode == 0:
                return
            last = result.stderr.decode(errors="replace")
            time.sleep(3)
        raise AssertionError(f"no SSH within {timeout} s ({last})")

    def send_file(self, source: Path, dest: str) -> None:
        with open(source, "rb") as data:
            self.ssh(f"cat > {shlex.quote(dest)}", input=data.read(), timeout=300)

    def poweroff(self, timeout: float = 300) -> None:
        if not self.running():
            return
        self.ssh("systemctl poweroff", check=False, timeout=60)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
