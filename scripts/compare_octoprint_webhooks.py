#!/usr/bin/env python3
"""Run OctoPrint-Webhooks and Herald side by side in one real OctoPrint and print the differences.

    .venv/bin/python scripts/compare_octoprint_webhooks.py /path/to/OctoPrint-Webhooks [--keep]
    .venv/bin/python scripts/compare_octoprint_webhooks.py --herald-only

OctoPrint-Webhooks is not on any package index these machines reach, and its code is
not part of Herald: give the path of a local copy of its source (a checkout of
derekantrican's fork, 4.x: the folder holding ``octoprint_webhooks/__init__.py``). It is
loaded from the OctoPrint basedir's plugins folder, so nothing is installed; it needs
Pillow (``.venv/bin/pip install pillow``) and ``requests`` (OctoPrint ships it).

What it does:
1. starts one webhook receiver (127.0.0.1), a Herald (``herald serve``) with an admin
   account, and a real OctoPrint (Virtual Printer) with the Herald plugin and
   OctoPrint-Webhooks, whose settings hold three hooks: its shipped default (multipart,
   ``@snapshot``), a JSON body using every ``@param`` with header templates, and a
   form-encoded body with string interpolation;
2. links the Herald plugin (device flow, approved over HTTP) and imports the hooks into
   Herald with the plugin's own "Create these webhooks in Herald" command, so both
   plugins send the same templates to the same URLs;
3. prints twice: one print to the end, one paused, resumed and cancelled;
4. pairs the requests (OctoPrint-Webhooks' have no ``webhook-id``; Herald's are put in
   ``herald-sequence`` order) per hook and topic, and prints every difference in
   method, path, query, encoding, headers and fields. Timings (``currentTime``, the
   multipart boundary) and Herald's own headers (``webhook-*``, ``herald-*``) are left
   out; fields that describe a moment (state, progress) are compared as they are, since
   both plugins read them at the event.

``--herald-only`` runs the same with Herald alone (no OctoPrint-Webhooks needed) and
prints what Herald sent: a check of the harness. Exit status: 0 when no difference was
found, 1 when some were, 2 when the source or a dependency is missing.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_BODY = ('{\n  "deviceIdentifier":"@deviceIdentifier",\n  "apiSecret":"@apiSecret",\n  "topic":"@topic",\n'
                '  "message":"@message",\n  "extra":"@extra",\n  "state": "@state",\n  "job": "@job",\n'
                '  "progress": "@progress",\n  "currentZ": "@currentZ",\n  "offsets": "@offsets",\n'
                '  "meta": "@meta",\n  "currentTime": "@currentTime",\n  "snapshot": "@snapshot"\n}')
EVERY_PARAM = {
    "deviceIdentifier": "@deviceIdentifier", "apiSecret": "@apiSecret", "topic": "@topic", "message": "@message",
    "extra": "@extra", "state": "@state", "job": "@job", "progress": "@progress", "currentZ": "@currentZ",
    "offsets": "@offsets", "meta": "@meta", "currentTime": "@currentTime",
    "milestone": "@percentCompleteMilestone", "file": "@job.file.name", "completion": "@progress.completion",
    "stateText": "@state.text", "paused": "@state.flags.paused", "hash": "@meta.hash",
    "estimate": "@meta.analysis.estimatedPrintTime", "lastPrintTime": "@meta.statistics.lastPrintTime._default",
    "reason": "@extra.reason", "line": "@job.file.name is at @progress.completion % on @deviceIdentifier",
}
EVENTS_ON = {"eventPrintStarted": True, "eventPrintDone": True, "eventPrintFailed": True,
             "eventPrintPaused": True, "eventUserActionNeeded": True, "eventError": True,
             "event_print_progress": True, "event_print_progress_interval": "25"}
MESSAGES = {"eventPrintStartedMessage": "Your print has started.", "eventPrintDoneMessage": "Your print is done.",
            "eventPrintFailedMessage": "Something went wrong and your print has failed.",
            "eventPrintPausedMessage": "Your print has paused. You might need to change the filament color.",
            "eventUserActionNeededMessage": "User action needed. You might need to change the filament color.",
            "eventPrintProgressMessage": "Your print is @percentCompleteMilestone % complete.",
            "eventErrorMessage": "There was an error."}
IGNORED_HEADERS = {"host", "content-length", "user-agent", "accept", "accept-encoding", "connection"}
TIMING_FIELDS = {"currentTime"}


HOOK_PATHS = ("/default", "/every", "/form")


def hooks(receiver_url: str) -> list[dict]:
    base = {"apiSecret": "abcdef123456", "deviceIdentifier": "Compare Printer", "webhook_enabled": True,
            "oauth": False, "oauth_url": "", "oauth_headers": "{}", "oauth_data": "{}", "oauth_http_method": "POST",
            "oauth_content_type": "JSON", "test_event": "PrintStarted", "customEvents": [], "event_cooldown": 0,
            **EVENTS_ON, **MESSAGES}
    return [
        {**base, "url": receiver_url + "/default", "http_method": "POST", "content_type": "JSON",
         "headers": '{\n  "Content-Type": "application/json"\n}', "data": DEFAULT_BODY},
        {**base, "url": receiver_url + "/every", "http_method": "POST", "content_type": "JSON",
         "headers": json.dumps({"X-Device": "@deviceIdentifier", "Authorization": "Bearer @apiSecret",
                                "X-Topic": "@topic", "Content-Type": "text/plain"}),
         "data": json.dumps(EVERY_PARAM, indent=2)},
        {**base, "url": receiver_url + "/form", "http_method": "POST", "content_type": "FORM", "headers": "{}",
         "data": json.dumps({"topic": "@topic", "text": "@topic : @message ( @job.file.name )",
                             "extra": "@extra", "z": "@currentZ", "completion": "@progress.completion"})},
    ]


# --- the receiver ---------------------------------------------------------------------------


@dataclass
class Got:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def herald(self) -> bool:
        return "webhook-id" in self.headers


def received(receiver) -> list[Got]:
    """The receiver's requests (tests/plugin/receiver.py records them in arrival order)."""
    out = []
    for number, request in enumerate(receiver.requests):
        parts = urlsplit(request.path)
        out.append(Got(request.method, parts.path, parts.query,
                       {k.lower(): v for k, v in request.headers.items()}, request.body, float(number)))
    return out


def start_receiver():
    from tests.plugin.receiver import Receiver

    receiver = Receiver()
    for path in HOOK_PATHS:
        for method in ("GET", "POST", "PUT", "DELETE"):
            receiver.routes[(method, path)] = lambda request: (200, {"ok": True})
    return receiver


# --- what a request says --------------------------------------------------------------------


def content(got: Got) -> tuple[str, object]:
    """The request's encoding and its fields, parsed."""
    ctype = got.headers.get("content-type", "")
    if got.method == "GET":
        return "query", parse_qsl(got.query, keep_blank_values=True)
    if ctype.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + got.body)
        fields = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if part.get_filename():
                fields.append((name, f"<file {part.get_filename()} {part.get_content_type()} {len(data)} bytes>"))
            else:
                fields.append((name, data.decode(errors="replace")))
        return "multipart", fields
    if "x-www-form-urlencoded" in ctype:
        return "form", parse_qsl(got.body.decode(errors="replace"), keep_blank_values=True)
    try:
        return "json", json.loads(got.body or b"null")
    except ValueError:
        return "text", got.body.decode(errors="replace")


def topic_of(got: Got) -> str:
    kind, fields = content(got)
    if isinstance(fields, dict):
        return str(fields.get("topic", "?"))
    if isinstance(fields, list):
        return next((str(v) for k, v in fields if k == "topic"), "?")
    return "?"


def comparable_headers(got: Got) -> dict[str, str]:
    out = {}
    for key, value in got.headers.items():
        if key in IGNORED_HEADERS or key.startswith(("webhook-", "herald-")):
            continue
        if key == "content-type":
            value = value.split(";")[0].strip() if value.startswith("multipart/") else value
        out[key] = value
    return out


def _pairs(fields: object) -> list[tuple[str, object]]:
    if isinstance(fields, dict):
        return list(fields.items())
    if isinstance(fields, list):
        return [tuple(item) for item in fields]
    return [("<body>", fields)]


def _flatten(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, dict):
        if not value:
            out[prefix] = {}
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def differences(old: Got, new: Got) -> list[str]:
    diffs = []
    if (old.method, old.path) != (new.method, new.path):
        diffs.append(f"request line: {old.method} {old.path} vs {new.method} {new.path}")
    old_kind, old_fields = content(old)
    new_kind, new_fields = content(new)
    if old_kind != new_kind:
        diffs.append(f"encoding: {old_kind} vs {new_kind}")
    oh, nh = comparable_headers(old), comparable_headers(new)
    for key in sorted(set(oh) | set(nh)):
        if oh.get(key) != nh.get(key):
            diffs.append(f"header {key}: {oh.get(key)!r} vs {nh.get(key)!r}")
    old_pairs, new_pairs = _pairs(old_fields), _pairs(new_fields)
    if [k for k, _ in old_pairs] != [k for k, _ in new_pairs]:
        diffs.append(f"field names/order: {[k for k, _ in old_pairs]} vs {[k for k, _ in new_pairs]}")
    old_map, new_map = dict(old_pairs), dict(new_pairs)
    for key in [k for k, _ in old_pairs] + [k for k, _ in new_pairs if k not in old_map]:
        if key in TIMING_FIELDS:
            continue
        a, b = old_map.get(key, "<missing>"), new_map.get(key, "<missing>")
        if a == b:
            continue
        # JSON text in form fields: show which inner paths differ
        try:
            pa = json.loads(a) if isinstance(a, str) and a[:1] in "{[" else a
            pb = json.loads(b) if isinstance(b, str) and b[:1] in "{[" else b
        except ValueError:
            pa, pb = a, b
        if isinstance(pa, dict) and isinstance(pb, dict):
            fa: dict[str, object] = {}
            fb: dict[str, object] = {}
            _flatten("", pa, fa)
            _flatten("", pb, fb)
            inner = [p for p in sorted(set(fa) | set(fb)) if fa.get(p, "<missing>") != fb.get(p, "<missing>")]
            detail = "; ".join(f"{p}: {fa.get(p, '<missing>')!r} vs {fb.get(p, '<missing>')!r}" for p in inner[:12])
            text = "the same content, other JSON text" if not inner else detail
            diffs.append(f"field {key}: {text}")
        else:
            diffs.append(f"field {key}: {a!r} vs {b!r}")
    return diffs


# --- the run ----------------------------------------------------------------------------------


def check_source(path: Path | None) -> Path | None:
    if path is None:
        return None
    candidates = [path, path / "octoprint_webhooks"]
    for candidate in candidates:
        if (candidate / "__init__.py").is_file() and candidate.name == "octoprint_webhooks":
            return candidate
    return None


def run(source: Path | None, keep: bool) -> int:
    from tests.e2e.test_plugin_octoprint import EMAIL, PASSWORD, HeraldOwner, gcode, link, wait_for
    from tests.support.octoprint import OctoPrintServer, free_port
    from tests.support.server import LiveServer

    work = Path(tempfile.mkdtemp(prefix="compare-owh-"))
    receiver = start_receiver()
    herald = LiveServer(data_dir=work / "herald", port=free_port())
    herald.data_dir.mkdir(parents=True)
    made = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", EMAIL, "--password",
                           PASSWORD], env=herald.environ(), capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        print(made.stdout + made.stderr)
        return 2
    octoprint = OctoPrintServer(work / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Compare", "interval_printing": 5, "interval_idle": 10})
    try:
        herald.start()
        octoprint.prepare()
        import yaml

        config_path = octoprint.basedir / "config.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["plugins"]["webhooks"] = {"hooks": hooks(receiver.url), "settings_version": 2}
        config_path.write_text(yaml.safe_dump(config))
        if source is not None:
            plugins = octoprint.basedir / "plugins"
            plugins.mkdir(exist_ok=True)
            shutil.copytree(source, plugins / "octoprint_webhooks", dirs_exist_ok=True)
        print(f"OctoPrint on {octoprint.url}, Herald on {herald.url}, receiver on {receiver.url}")
        octoprint.start()
        octoprint.wait_operational()
        if source is not None:
            loaded = octoprint.api("GET", "/api/settings").json().get("plugins", {}).get("webhooks")
            if not loaded:
                print("OctoPrint did not load OctoPrint-Webhooks: see", octoprint.log_path)
                return 2
        owner = HeraldOwner(herald.url).login()
        link(octoprint, owner)
        entry = octoprint.herald_command("webhooks_import")  # 202, then the command's result
        answer = entry.get("result") or {"error": entry.get("error")}
        print("import:", json.dumps({k: answer.get(k) for k in ("created", "already_imported", "not_imported")}))
        for result in answer.get("hooks", []):
            print(f"  hook {result['index']}: {result['status']} {result.get('name') or result.get('error')}"
                  + (f" (not carried over: {result['not_carried_over']})" if result.get("not_carried_over") else ""))

        # One print to the end; one paused, resumed and cancelled.
        octoprint.upload_and_print("compare.gcode", gcode(60))
        wait_for(lambda: octoprint.job()["state"].startswith("Printing"), 30, "the print to start")
        wait_for(lambda: octoprint.job()["state"] == "Operational", 180, "the print to end")
        octoprint.upload_and_print("cancel.gcode", gcode(400))
        wait_for(lambda: (octoprint.job()["progress"]["completion"] or 0) > 3, 60, "the second print to get going")
        octoprint.api("POST", "/api/job", json={"command": "pause", "action": "pause"})
        wait_for(lambda: octoprint.job()["state"] == "Paused", 60, "the pause")
        time.sleep(1)
        octoprint.api("POST", "/api/job", json={"command": "pause", "action": "resume"})
        wait_for(lambda: octoprint.job()["state"].startswith("Printing"), 60, "the resume")
        time.sleep(1)
        octoprint.api("POST", "/api/job", json={"command": "cancel"})
        wait_for(lambda: octoprint.job()["state"] == "Operational", 60, "the cancel")
        wait_for(lambda: octoprint.api("GET", "/api/plugin/herald").json()["queued_events"] == 0, 60,
                 "the plugin's outbox to drain")
        time.sleep(5)  # Herald's worker polls; the last deliveries arrive within a second or two
    finally:
        octoprint.stop()
        herald.stop()
        receiver.close()
        if keep:
            print("kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(received(receiver), herald_only=source is None)


def report(requests: list[Got], *, herald_only: bool) -> int:
    found = 0
    for path in sorted({r.path for r in requests}):
        old = [r for r in requests if r.path == path and not r.herald]
        new = sorted((r for r in requests if r.path == path and r.herald),
                     key=lambda r: (int(r.headers.get("herald-sequence", "0")), r.at))
        print(f"\n== {path}: OctoPrint-Webhooks sent {len(old)}, Herald sent {len(new)}")
        if herald_only:
            for got in new:
                kind, fields = content(got)
                print(f"  {topic_of(got)} [{got.headers.get('herald-event-type')}] {got.method} {kind}: "
                      f"{json.dumps(fields)[:300]}")
            continue
        old_topics, new_topics = [topic_of(r) for r in old], [topic_of(r) for r in new]
        if old_topics != new_topics:
            found += 1
            print(f"  topics differ:\n    OctoPrint-Webhooks: {old_topics}\n    Herald:             {new_topics}")
        # Pair by topic, in order.
        remaining = list(new)
        for got in old:
            match = next((n for n in remaining if topic_of(n) == topic_of(got)), None)
            if match is None:
                continue
            remaining.remove(match)
            diffs = differences(got, match)
            if diffs:
                found += len(diffs)
                print(f"  {topic_of(got)}:")
                for line in diffs:
                    print(f"    - {line}")
            else:
                print(f"  {topic_of(got)}: identical")
    if not herald_only:
        print(f"\n{found} difference(s)." if found else "\nNo differences.")
    return 1 if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, help="a local copy of OctoPrint-Webhooks' source")
    parser.add_argument("--herald-only", action="store_true", help="run without OctoPrint-Webhooks")
    parser.add_argument("--keep", action="store_true", help="keep the OctoPrint and Herald folders")
    args = parser.parse_args()
    if not args.herald_only:
        source = check_source(args.source)
        if source is None:
            where = f" at {args.source}" if args.source else ""
            print(f"OctoPrint-Webhooks' source is missing{where}: give the path of a local copy of it (the folder "
                  "holding octoprint_webhooks/__init__.py, e.g. a checkout of derekantrican/OctoPrint-Webhooks). "
                  "It is on no package index reachable here, so this comparison cannot run without it; "
                  "--herald-only runs Herald's side alone.", file=sys.stderr)
            return 2
        try:
            import PIL  # noqa: F401 - OctoPrint-Webhooks imports it
        except ImportError:
            print("OctoPrint-Webhooks needs Pillow: .venv/bin/pip install pillow", file=sys.stderr)
            return 2
        return run(source, args.keep)
    return run(None, args.keep)


if __name__ == "__main__":
    sys.exit(main())
