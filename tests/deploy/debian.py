"""Debian bookworm roots made with debootstrap, cached outside the clone.

The deploy tests need two roots: a minimal one shaped like Docker's
``debian:bookworm-slim`` (the Dockerfile's base image) and one with systemd, like
a fresh Debian 12 / Raspberry Pi OS install, for image/install.sh. Making them
takes a minute or two, so each is kept as a tarball under the cache directory
(``$HERALD_DEPLOY_CACHE``, default ``~/.cache/herald-deploy``) and rebuilt when
missing. The Debian mirror is the one this machine's apt already uses.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "bookworm"
# Bump when the recipe below changes, so stale cached roots are rebuilt.
RECIPE = "3"

# What Docker's official slim images do to a debootstrapped root (debuerreotype's
# "slimify"): no documentation, manuals or translations, and apt keeps no .debs.
_DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
_APT_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""
_APT_SLIM = """\
Acquire::Languages "none";
APT::AutoRemove::SuggestsImportant "false";
"""


def cache_dir() -> Path:
    path = Path(os.environ.get("HERALD_DEPLOY_CACHE", "~/.cache/herald-deploy")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def cache_lock() -> Iterator[None]:
    """Serialise users of the cache (two test runs on one machine share it)."""
    with open(cache_dir() / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debian_sources() -> list[tuple[str, str]]:
    """(URI, suite) pairs of the Debian bookworm archives this machine's apt uses."""
    found: list[tuple[str, str]] = []
    wanted = re.compile(rf"^{SUITE}(-updates|-security)?$")
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 4 and parts[0] == "deb" and wanted.match(parts[2]) and "main" in parts[3:]:
                found.append((parts[1].rstrip("/"), parts[2]))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith("#") and not line.startswith(" "):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or "main" not in fields.get("components", "").split():
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    if wanted.match(suite):
                        found.append((uri.rstrip("/"), suite))
    if not any(suite == SUITE for _, suite in found):
        raise RuntimeError(f"no Debian {SUITE} main archive in this machine's apt sources")
    return found


def _sources_file(sources: list[tuple[str, str]]) -> str:
    stanzas = []
    for uri in dict.fromkeys(uri for uri, _ in sources):
        suites = " ".join(suite for u, suite in sources if u == uri)
        stanzas.append(
            f"Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    return "\n".join(stanzas)


def ensure_binfmt(arch: str) -> None:
    """Let this machine run another architecture's programs (qemu-user-static, binfmt_misc).

    The F flag makes the kernel open the emulator at registration, so it works inside
    chroots and containers, which do not have it on their own path.
    """
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], check=True)
    name = {"arm64": "aarch64"}.get(arch, arch)
    entry = misc / f"qemu-{name}"
    if not entry.exists():
        subprocess.run(["update-binfmts", "--enable", f"qemu-{name}"], check=False)
    assert entry.exists(), f"no binfmt_misc entry for {arch}: .ci/run installs qemu-user-static"
    flags = next(line for line in entry.read_text().splitlines() if line.startswith("flags:"))
    assert "F" in flags.split(":", 1)[1], f"{entry} lacks the F flag: {flags}"


def _debootstrap(target: Path, include: list[str], log: Path, arch: str = "amd64") -> None:
    sources = debian_sources()
    mirror = next(uri for uri, suite in sources if suite == SUITE)
    if any(uri.startswith("https:") for uri, _ in sources):
        include = [*include, "ca-certificates"]
    command = ["debootstrap", "--variant=minbase"]
    if arch != "amd64":
        ensure_binfmt(arch)
        command.append(f"--arch={arch}")
    if include:
        command.append("--include=" + ",".join(include))
    command += [SUITE, str(target), mirror]
    with open(log, "wb") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"debootstrap failed ({result.returncode}); see {log}")
    (target / "etc/apt/sources.list").write_text("")
    (target / "etc/apt/sources.list.d/debian.sources").write_text(_sources_file(sources))


def _slimify(root: Path) -> None:
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(_DPKG_SLIM)
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_CLEAN)
    (root / "etc/apt/apt.conf.d/docker-slim").write_text(_APT_SLIM)
    for pattern in ("usr/share/doc/*", "usr/share/groff/*", "usr/share/info/*", "usr/share/linda/*",
                    "usr/share/lintian/overrides/*", "usr/share/locale/*", "usr/share/man/*"):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                # keep the copyright files, as the slim images do
                for item in path.rglob("*"):
                    if item.is_file() and item.name != "copyright":
                        item.unlink()
            else:
                path.unlink()


def _clean(root: Path) -> None:
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/log/*.log", "var/log/apt/*", "tmp/*"):
        for path in root.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir() and pattern.startswith("tmp"):
                shutil.rmtree(path)


def rootfs_tarball(name: str, *, include: list[str] | None = None, slim: bool = False,
                   arch: str = "amd64") -> Path:
    """A cached tarball of a debootstrapped bookworm root; built when missing."""
    suffix = "" if arch == "amd64" else f"-{arch}"
    target = cache_dir() / f"{name}-{SUITE}{suffix}-r{RECIPE}.tar"
    if target.exists():
        return target
    work = cache_dir() / f"{name}{suffix}.work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        root = work / "root"
        _debootstrap(root, include or [], work / "debootstrap.log", arch)
        if slim:
            _slimify(root)
        _clean(root)
        partial = target.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(partial), "."],
                       check=True)
        partial.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def unpack(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(tarball)], check=True)
    return dest
