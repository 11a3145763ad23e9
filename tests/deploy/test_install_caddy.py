"""install.sh --caddy on a Debian 12 root that already runs Caddy for another site, twice.

What the HTTPS walk found: an upgrade overwrote the edited Caddyfile and reset
HERALD_TRUSTED_PROXIES, and the first run replaced a multi-site Caddyfile outright; where
systemd is not running, the installer stopped without saying how to start Herald and Caddy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.deploy import debian
from tests.deploy.browser import Browser, free_port
from tests.deploy.conftest import artifacts_dir, require_tools
from tests.deploy.test_install import SOURCE_IN_ROOT, Chroot, _copy_source, _stop

pytestmark = pytest.mark.slow

DOMAIN = "herald.example.com"
OTHER_SITES = """\
# My Caddy: a photo site and my router's page.
photos.example.com {
\treverse_proxy 127.0.0.1:2342
}

router.example.com {
\treverse_proxy 192.168.1.1:80
}
"""


@pytest.fixture
def caddy_root(cache_lock, tmp_path) -> Path:
    require_tools("debootstrap", "unshare", "chroot")
    tarball = debian.rootfs_tarball("system", include=["systemd", "systemd-sysv", "python3"])
    root = debian.unpack(tarball, tmp_path / "root")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_caddy_install_keeps_other_sites_and_upgrades_keep_edits(caddy_root: Path):
    root = caddy_root
    log = artifacts_dir() / "install-caddy.log"
    log.write_text("")
    chroot = Chroot(root, log)
    # Caddy is already there, serving the person's other sites.
    chroot.run("sh", "-c", "apt-get update -q && apt-get install -y -q --no-install-recommends caddy",
               timeout=900)
    caddyfile = root / "etc/caddy/Caddyfile"
    caddyfile.write_text(OTHER_SITES)

    _copy_source(root)
    before = log.stat().st_size
    chroot.run("bash", f"{SOURCE_IN_ROOT}/image/install.sh", "--caddy", DOMAIN, timeout=900)
    first_run = log.read_text()[before:]

    # The other sites stay; one import line brings Herald's site in; a backup is beside it.
    text = caddyfile.read_text()
    assert text.startswith(OTHER_SITES) and text.rstrip().endswith("import /etc/caddy/herald.caddy"), text
    backups = [p for p in caddyfile.parent.iterdir() if p.name.startswith("Caddyfile.before-herald")]
    assert [b.read_text() for b in backups] == [OTHER_SITES]
    site = root / "etc/caddy/herald.caddy"
    assert f"{DOMAIN} {{" in site.read_text() and "reverse_proxy 127.0.0.1:8080" in site.read_text()
    # Caddy itself accepts the result: three sites, Herald's among them.
    adapted = chroot.output("caddy", "adapt", "--adapter", "caddyfile", "--config", "/etc/caddy/Caddyfile")
    for host in ("photos.example.com", "router.example.com", DOMAIN):
        assert f'"{host}"' in adapted, adapted[:2000]
    env_file = root / "etc/herald/herald.env"
    settings = env_file.read_text().splitlines()
    assert f"HERALD_PUBLIC_URL=https://{DOMAIN}" in settings
    assert "HERALD_TRUSTED_PROXIES=127.0.0.1,::1" in settings and "HERALD_HOST=127.0.0.1" in settings

    # No systemd here (a chroot): the installer says how to start both by hand and hands
    # over the one-time setup link, which works once Herald runs.
    assert "nohup herald serve" in first_run and "caddy run --adapter caddyfile" in first_run, first_run
    link = re.search(rf"https://{re.escape(DOMAIN)}(/setup/[A-Za-z0-9_-]+)", first_run)
    assert link, first_run[-3000:]
    port = free_port()
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("HERALD_PORT=")]
    env_file.write_text("\n".join([*lines, f"HERALD_PORT={port}"]) + "\n")  # the person's edit
    server_log = artifacts_dir() / "install-caddy-server.log"
    server = chroot.popen("/usr/local/bin/herald", "serve", log=server_log)
    try:
        browser = Browser(f"http://127.0.0.1:{port}")
        browser.wait_healthy(timeout=90, process_alive=lambda: server.poll() is None)
        browser.csrf(link.group(1))  # the setup form, with its CSRF token: the link is live
    finally:
        assert _stop(server) == 0, server_log.read_text()

    # The person edits all three files; an upgrade (a new release) must touch none of them.
    caddyfile.write_text(caddyfile.read_text().replace("192.168.1.1:80", "192.168.1.254:80"))
    site.write_text(site.read_text().replace("encode zstd gzip", "encode gzip\n\theader X-Mine yes"))
    env_file.write_text(env_file.read_text().replace("HERALD_TRUSTED_PROXIES=127.0.0.1,::1",
                                                     "HERALD_TRUSTED_PROXIES=10.0.0.5  # my other proxy"))
    edited = {path: path.read_bytes() for path in (caddyfile, site, env_file)}
    _copy_source(root, version="99.0.0")
    before = log.stat().st_size
    chroot.run("bash", f"{SOURCE_IN_ROOT}/image/install.sh", "--caddy", DOMAIN, timeout=900)
    second_run = log.read_text()[before:]
    for path, content in edited.items():
        assert path.read_bytes() == content, f"{path} changed on upgrade"
    # ... and it says what it left alone and what the new release would have set.
    assert "Keeping /etc/herald/herald.env as it is: you edited it" in second_run, second_run
    assert "HERALD_TRUSTED_PROXIES=127.0.0.1,::1" in second_run
    assert "Keeping /etc/caddy/herald.caddy as it is: you edited it" in second_run
    assert (site.parent / "herald.caddy.new").is_file()
    assert len([p for p in caddyfile.parent.iterdir() if p.name.startswith("Caddyfile.before-herald")]) == 1
