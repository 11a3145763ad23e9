"""bespoken's virtual-alexa (npm) as a third-party Alexa simulator: it turns utterances into
requests by Herald's own interaction models and posts them to a real HTTP endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

import skill

SIMULATOR = Path(__file__).resolve().parents[1] / "skill" / "simulator"


def ensure_simulator() -> Path:
    """node and the pinned virtual-alexa, installed once per lock file under ~/.cache (never in
    the clone: CI starts from a fresh one), with drive.js beside its node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed (.ci/run installs Debian's nodejs and npm)"
    lock = (SIMULATOR / "package-lock.json").read_bytes()
    home = Path.home() / ".cache" / "herald-virtual-alexa" / hashlib.sha256(lock).hexdigest()[:16]
    if not (home / "node_modules" / "virtual-alexa").is_dir():
        home.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(SIMULATOR / name, home / name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=home, check=True,
                       capture_output=True, timeout=600)
    shutil.copyfile(SIMULATOR / "drive.js", home / "drive.js")  # the clone's, every run
    return home / "drive.js"


class SkillServer:
    """The skill behind HTTP on 127.0.0.1: ``source()`` gives each request's printer source."""

    def __init__(self, source: Callable[[], skill.PrinterStatusSource | None]) -> None:
        self.source = source
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _alexa(self, request: web.Request) -> web.Response:
        envelope = await request.json()
        self.requests.append(envelope)
        return web.json_response(skill.invoke(envelope, self.source()))

    async def __aenter__(self) -> SkillServer:
        app = web.Application()
        app.router.add_post("/alexa", self._alexa)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/alexa"
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def drive(*, model: Path, locale: str, url: str, turns: list[str], application_id: str,
                access_token: str | None = None, apl: str | None = None,
                api_endpoint: str | None = None) -> list[dict[str, Any]]:
    """Run the turns through virtual-alexa; one result per turn (request, response or error)."""
    script = ensure_simulator()
    spec = {"model": str(model), "locale": locale, "url": url, "turns": turns, "applicationId": application_id,
            "accessToken": access_token, "apl": apl, "apiEndpoint": api_endpoint}
    process = await asyncio.create_subprocess_exec(
        "node", str(script), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(json.dumps(spec).encode()), timeout=300)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


def said(result: dict[str, Any]) -> str | None:
    """The SSML spoken in a turn's answer, without <speak>; None when nothing is said."""
    assert "error" not in result, result
    speech = ((result.get("response") or {}).get("response") or {}).get("outputSpeech")
    if not speech:
        return None
    return speech["ssml"].removeprefix("<speak>").removesuffix("</speak>")
