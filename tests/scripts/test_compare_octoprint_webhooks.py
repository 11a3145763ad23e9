"""scripts/compare_octoprint_webhooks.py: it says clearly when OctoPrint-Webhooks' source is missing,
its comparison names differences, and its harness runs Herald's side in a real OctoPrint."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compare_octoprint_webhooks.py"


def load():
    spec = importlib.util.spec_from_file_location("compare_octoprint_webhooks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args", [[], ["/nonexistent/OctoPrint-Webhooks"]])
def test_missing_source_is_named(args, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 2
    assert "OctoPrint-Webhooks' source is missing" in result.stderr
    assert "octoprint_webhooks/__init__.py" in result.stderr and "--herald-only" in result.stderr
    empty = tmp_path / "OctoPrint-Webhooks"
    empty.mkdir()
    result = subprocess.run([sys.executable, str(SCRIPT), str(empty)], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 2 and f"missing at {empty}" in result.stderr


def test_differences_are_named_and_timings_left_out():
    compare = load()
    old = compare.Got("POST", "/x", "", {"content-type": "application/x-www-form-urlencoded", "x-a": "1"},
                      b"topic=Print+Done&extra=%7B%22a%22%3A+1%7D&currentTime=1&z=0.2", 0)
    new = compare.Got("POST", "/x", "", {"content-type": "application/x-www-form-urlencoded", "x-a": "1",
                                         "webhook-id": "msg_1", "herald-sequence": "3"},
                      b"topic=Print+Done&extra=%7B%22a%22%3A+2%7D&currentTime=2&z=0.2", 1)
    assert compare.differences(old, new) == ["field extra: a: 1 vs 2"]
    assert compare.report([old, new], herald_only=False) == 1
    same = compare.Got(new.method, new.path, "", new.headers, old.body.replace(b"currentTime=1", b"currentTime=9"), 2)
    assert compare.differences(old, same) == []
    assert compare.report([old, same], herald_only=False) == 0


@pytest.mark.slow
def test_herald_side_runs_in_a_real_octoprint():
    result = subprocess.run([sys.executable, str(SCRIPT), "--herald-only"], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert '"created": 3' in out
    for path in ("/default", "/every", "/form"):
        assert f"== {path}: OctoPrint-Webhooks sent 0, Herald sent 8" in out
    assert "Print Failed [print.cancelled] POST multipart" in out  # the cancel, as OctoPrint-Webhooks sends it
