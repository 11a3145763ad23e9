"""OctoPrint-Herald: link this printer to a Herald hub and publish its status and events.

Every call to Herald is outbound, from a thread of the plugin's own, with timeouts. What
OctoPrint calls (events, progress, G-code hooks, the settings page's commands) only hands
work to one of those threads (``worker.Worker``) and returns at once: the intake thread
maps events and writes them to the outbox on disk in batches, the publisher thread sends
them, the command thread runs the settings page's commands and reports back to the page.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import uuid

import flask
import octoprint.plugin
from octoprint.access.permissions import Permissions

from . import appkeys, job_control, webhooks_import
from .client import TIMEOUT, HeraldClient, HeraldError, version_problem
from .linking import LinkSession
from .mapping import (
    SIMPLE_EVENTS,
    STATUS_EVENTS,
    EventMapper,
    build_status,
    event_printer_data,
    file_of,
    hide_file_names,
    json_safe,
    now_iso,
)
from .netinfo import LocalAddress
from .outbox import Outbox
from .publisher import Intervals, Publisher
from .relay_consent import RELAY_DEFAULTS, relay_settings
from .tunnel import RelayTunnel, TunnelConfig, webcam_urls
from .version import __version__
from .worker import Worker

# OctoPrint events that may become Herald events: their printer data is taken as they happen.
_MAPPED_EVENTS = {*SIMPLE_EVENTS, "PrintDone", "PrintCancelled", "PrintFailed"}
_COMMANDS_KEPT = 20  # results of the settings page's commands kept for the page to read

# Settings the REST API and the settings dialog must not write directly: the key is only
# ever stored by the link flow or by a successful "Verify".
_COMMAND_ONLY_SETTINGS = ("printer_key", "printer_id")


class HeraldPlugin(
    octoprint.plugin.SettingsPlugin,
    octoprint.plugin.StartupPlugin,
    octoprint.plugin.ShutdownPlugin,
    octoprint.plugin.EventHandlerPlugin,
    octoprint.plugin.ProgressPlugin,
    octoprint.plugin.TemplatePlugin,
    octoprint.plugin.AssetPlugin,
    octoprint.plugin.SimpleApiPlugin,
):
    _publisher_timeout = TIMEOUT  # (connect, read) of the publisher's calls; tests shorten it

    def __init__(self) -> None:
        self._mapper = EventMapper()
        self._publisher: Publisher | None = None
        self._link: LinkSession | None = None
        self._last_job: dict | None = None
        self._lock = threading.RLock()  # the link session only; never taken by an OctoPrint hook
        self._prompt_open = False  # set by the G-code hooks: a prompt is reported, no "ok" since
        self._intake = Worker("herald-intake", self._handle_intake)
        self._commands = Worker("herald-commands", self._run_commands)
        self._command_results: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._local_address = LocalAddress()
        self._tunnel: RelayTunnel | None = None
        self._server_host = "127.0.0.1"
        self._server_port: int | None = None

    ##~~ SettingsPlugin mixin

    def get_settings_defaults(self):
        return {
            "herald_url": "",
            "printer_name": "",
            "printer_key": "",
            "printer_id": "",
            "verify_tls": True,
            "ca_bundle": "",
            "publish_file_names": True,
            "publish_local_ip": True,
            "attach_snapshot": False,
            "snapshot_url": "",
            "interval_printing": 30,
            "interval_idle": 60,
            "send_thumbnail": True,
            "webcam_interval": 0,  # minutes between webcam snapshots while printing; 0 = off
            # Remote access through Herald's relay: the owner's consent, given here at the printer.
            # Off by default; minting OctoPrint application keys for apps is a second, separate yes.
            "relay": dict(RELAY_DEFAULTS),
        }

    def get_settings_version(self):
        return 2

    def on_settings_migrate(self, target, current):
        # Version 1 is the first release: settings without a version come from a
        # pre-release build and only need the address normalised.
        if current is None or current < 1:
            url = self._settings.get(["herald_url"]) or ""
            if url != url.strip().rstrip("/"):
                self._settings.set(["herald_url"], url.strip().rstrip("/"))
        # Version 2 adds the relay's consent. Whatever a hand-edited config.yaml holds there is
        # read as the safe answer: anything but a clear true is off.
        if current is None or current < 2:
            self._settings.set(["relay"], relay_settings(self._settings.get(["relay"])))

    def get_settings_restricted_paths(self):
        return {"admin": [["printer_key"]]}

    def on_settings_save(self, data):
        plugin_data = data if isinstance(data, dict) else {}
        for key in _COMMAND_ONLY_SETTINGS:
            plugin_data.pop(key, None)
        if "herald_url" in plugin_data and isinstance(plugin_data["herald_url"], str):
            plugin_data["herald_url"] = plugin_data["herald_url"].strip().rstrip("/")
        if "relay" in plugin_data:
            merged = {**relay_settings(self._settings.get(["relay"])),
                      **(plugin_data["relay"] if isinstance(plugin_data["relay"], dict) else {})}
            plugin_data["relay"] = relay_settings(merged)
        result = octoprint.plugin.SettingsPlugin.on_settings_save(self, plugin_data)
        self._configure_publisher()
        if self._publisher is not None:
            self._publisher.request_status()  # Herald's printer page shows the relay's consent at once
        return result

    ##~~ the relay tunnel (plugin/octoprint_herald/tunnel.py)

    def _relay_config(self):
        """What the tunnel connects with, or None while the relay is off or the printer not linked.

        Called from the tunnel's own thread at every (re)connect and on reconfigure."""
        if not self._settings.get_boolean(["relay", "enabled"]):
            return None
        url = (self._settings.get(["herald_url"]) or "").strip()
        key = self._settings.get(["printer_key"]) or ""
        if not url or not key or not url.startswith(("http://", "https://")):
            return None
        stream, snapshot = webcam_urls(self._settings)
        port = self._server_port or self._settings.global_get_int(["server", "port"]) or 5000
        return TunnelConfig(herald_url=url, printer_key=key, verify=self._tls_verify(),
                            octoprint_host=self._server_host, octoprint_port=int(port),
                            webcam_stream=stream, webcam_snapshot=snapshot)

    def _relay_control_handlers(self):
        """The tunnel's plugin-side commands (docs/relay.md): ``mint_api_key`` and ``revoke_api_key``,
        answered by ``appkeys.py``, and ``job`` (pause, resume, cancel) by ``job_control.py``
        (refusals come back as ``{"error", "message"}``, never raised)."""
        return {**appkeys.control_handlers(self), **job_control.control_handlers(self)}

    def _reconfigure_relay(self):
        if self._tunnel is not None:
            self._tunnel.reconfigure()

    ##~~ StartupPlugin / ShutdownPlugin mixins

    def on_startup(self, host, port):
        # The address OctoPrint really serves on (``octoprint serve --port`` is not in the settings).
        # The relay reaches it on the loopback unless OctoPrint listens on one address only.
        self._server_port = port
        if host and host not in ("0.0.0.0", "::", "") and not str(host).startswith("::ffff:0"):
            self._server_host = "127.0.0.1" if host in ("localhost",) else host

    def on_after_startup(self):
        self._last_job = self._load_state().get("last_job")
        self._publisher = Publisher(
            Outbox(os.path.join(self.get_plugin_data_folder(), "outbox")),
            self._current_status,
            intervals=self._intervals,
            snapshot_url=self._snapshot_url,
            webcam_every=lambda: 60.0 * max(0, self._settings.get_int(["webcam_interval"]) or 0),
            on_change=lambda state: self._send_state(),
            logger=self._logger,
        )
        self._configure_publisher()
        self._publisher.start()
        self._intake._log = self._commands._log = self._logger
        self._intake.start()
        self._commands.start()
        self._tunnel = RelayTunnel(self._relay_config, control_handlers=self._relay_control_handlers(),
                                   logger=self._logger)
        self._tunnel.start()

    def on_shutdown(self):
        if self._link is not None:
            self._link.cancel()
        # What OctoPrint reported last reaches the disk, then Herald hears that OctoPrint stops:
        # the printer shows offline at once instead of after minutes of silence.
        self._intake.stop(timeout=5)
        self._commands.stop(timeout=1)
        if self._tunnel is not None:
            self._tunnel.stop(timeout=3)
        if self._publisher is not None:
            self._publisher.stop(timeout=10, goodbye=True)

    ##~~ EventHandlerPlugin mixin

    def on_event(self, event, payload):
        # OctoPrint's event thread: take the data of this moment, hand over, return.
        try:
            data = self._printer.get_current_data() if event in _MAPPED_EVENTS else None
            self._intake.submit(("event", event, dict(payload or {}), data, now_iso()))
        except Exception:  # never raise into OctoPrint
            self._logger.exception("Herald could not take the %s event", event)

    def _request_thumbnail(self, payload):
        """Hand the started job's G-code to the publisher, which reads its embedded preview."""
        if not self._settings.get_boolean(["send_thumbnail"]) or payload.get("origin") != "local":
            return
        path = self._file_manager.path_on_disk("local", payload.get("path") or payload.get("name") or "")
        job_file = None
        if self._settings.get_boolean(["publish_file_names"]):
            file = ((self._printer.get_current_data() or {}).get("job") or {}).get("file") or {}
            job_file = file.get("display") or file.get("name") or payload.get("name")
        self._publisher.request_thumbnail(job_file, path)

    ##~~ ProgressPlugin mixin

    def on_print_progress(self, storage, path, progress):
        # A thread OctoPrint starts per report: same as events, hand over and return.
        try:
            self._intake.submit(("progress", storage, path, progress, self._printer.get_current_data(), now_iso()))
        except Exception:
            self._logger.exception("Herald could not take a progress report")

    ##~~ gcode hooks (serial thread: cheap checks only)

    def on_gcode_received(self, comm, line, *args, **kwargs):
        try:
            # Only the lines that matter cross over: a prompt, and the first "ok" after one.
            if "paused for user" in line:
                self._prompt_open = True
                self._intake.submit(("line", line, now_iso()))
            elif self._prompt_open and line.startswith("ok"):
                self._prompt_open = False
                self._intake.submit(("line", line, now_iso()))
        except Exception:
            self._logger.exception("Herald could not inspect a firmware line")
        return line

    def on_gcode_sent(self, comm, phase, cmd, cmd_type, gcode, *args, **kwargs):
        try:
            if gcode == "M600":
                self._prompt_open = True
                self._intake.submit(("sent", gcode, now_iso()))
        except Exception:
            self._logger.exception("Herald could not inspect a sent command")

    ##~~ the intake thread: maps what OctoPrint reported, stores events in one batch

    def _handle_intake(self, batch):
        events = []  # (type, payload, printer_data, snapshot, occurred_at)
        status_news = False
        job_changed = False
        for item in batch:
            kind, data, at = item[0], None, item[-1]
            if kind == "event":
                _, event, payload, data, _ = item
                mapped = self._mapper.on_event(event, payload)
                for event_type, event_payload in mapped:
                    job_changed |= self._remember_job(event_type, event_payload)
                if event == "PrintFailed" and not mapped:
                    job_changed |= self._remember_job("print.cancelled", payload)  # fills the duration in
                status_news |= bool(mapped) or event in STATUS_EVENTS
                if event == "PrintStarted" and self._publisher is not None:
                    try:  # the slicer's preview, read off OctoPrint's threads; never at the events' cost
                        self._request_thumbnail(payload)
                    except Exception:
                        self._logger.exception("Herald could not look for the job's thumbnail")
            elif kind == "progress":
                _, storage, path, progress, data, _ = item
                mapped = self._mapper.on_progress(storage, path, progress)
                status_news |= bool(mapped)  # progress is news: an unchanged status is skipped
            elif kind == "line":
                mapped = self._mapper.on_received_line(item[1])
            else:
                mapped = self._mapper.on_sent_command(item[1])
            for event_type, event_payload in mapped:
                events.append(self._prepare(event_type, event_payload, data, at))
        if job_changed:
            try:
                self._save_state({"last_job": self._last_job})
            except OSError as exc:
                self._logger.error("Herald could not remember the last job on disk: %s", exc)
        publisher = self._publisher
        if publisher is None:
            return
        if events and publisher.accepting:
            publisher.enqueue_events(events)
        if status_news or events:
            publisher.request_status()

    def _prepare(self, event_type, payload, printer_data, occurred_at):
        if printer_data is None:
            printer_data = self._printer.get_current_data()
        # On the intake thread, not OctoPrint's: the state agreeing with the event, and the
        # file manager's metadata as @meta (OctoPrint-Webhooks' templates read both).
        printer_data = json_safe(event_printer_data(event_type, printer_data, self._file_metadata(printer_data)))
        payload = json_safe(payload)
        if not self._settings.get_boolean(["publish_file_names"]):
            payload, printer_data = hide_file_names(payload, printer_data)
        # Progress comes 99 times a print: pictures go with the events people look at.
        snapshot = event_type != "print.progress" and bool(self._settings.get_boolean(["attach_snapshot"]))
        return (event_type, payload, printer_data, snapshot, occurred_at)

    ##~~ TemplatePlugin / AssetPlugin mixins

    def is_template_autoescaped(self):
        return True

    def get_template_configs(self):
        return [{"type": "settings", "name": "Herald", "custom_bindings": True}]

    def get_assets(self):
        return {"js": ["js/herald.js"], "css": ["css/herald.css"]}

    ##~~ SimpleApiPlugin mixin

    def is_api_protected(self):
        return True

    def get_api_commands(self):
        return {"link": [], "link_cancel": [], "verify": ["printer_key"], "test": [], "unlink": [],
                "webhooks_find": [], "webhooks_import": [], "webhooks_turn_off": ["indexes"]}

    def on_api_get(self, request):
        if not Permissions.SETTINGS.can():
            flask.abort(403)
        wanted = request.args.get("command") if request is not None else None
        if wanted:
            result = self._command_results.get(wanted)
            if result is None:
                return flask.make_response(flask.jsonify({"error": "No such command."}), 404)
            return flask.jsonify(result)
        state = self._state()
        # Only for the settings page (admins): the OctoPrint users minted keys may act for.
        state["relay_users"] = self._user_names()
        return flask.jsonify(state)

    def on_api_command(self, command, data):
        """Runs the command on the plugin's command thread and answers 202 at once.

        Commands call Herald with timeouts of up to 20 s; OctoPrint's web server is
        synchronous, so running them here would freeze OctoPrint's UI meanwhile. The result
        reaches the page as a plugin message (``{"type": "command", "command": {...}}``) and
        at ``GET /api/plugin/herald?command=<id>``.
        """
        if not Permissions.SETTINGS.can():
            flask.abort(403)
        handler = getattr(self, f"_command_{command}", None)
        if handler is None:
            return flask.make_response(flask.jsonify({"error": f"Unknown command {command}."}), 400)
        entry = {"id": uuid.uuid4().hex, "command": command, "status": "running", "result": None, "error": None}
        self._command_results[entry["id"]] = entry
        while len(self._command_results) > _COMMANDS_KEPT:
            self._command_results.popitem(last=False)
        self._commands.submit((entry, handler, dict(data or {})))
        if not self._commands.running:
            self._commands.start()
        return flask.make_response(flask.jsonify(entry), 202)

    def _run_commands(self, batch):
        for entry, handler, data in batch:
            try:
                result = handler(data)
                entry.update(status="done", result=result)
            except HeraldError as exc:
                entry.update(status="failed", error=str(exc), http_status=exc.status)
            except Exception as exc:
                self._logger.exception("Herald's %s command failed", entry["command"])
                entry.update(status="failed", error=f"The {entry['command']} command failed: {exc}")
            if entry["status"] == "failed":
                self._logger.info("Herald: %s failed: %s", entry["command"], entry["error"])
            try:
                self._plugin_manager.send_plugin_message(self._identifier, {"type": "command", "command": entry})
            except Exception:
                self._logger.exception("Could not update the settings page")

    def wait_for_command(self, command_id, timeout=30.0):
        """The finished result of a command (tests and scripts; never called by OctoPrint)."""
        self._commands.wait_idle(timeout)
        return self._command_results.get(command_id)

    def _command_link(self, data):
        self._apply_form(data)
        client = self._client(with_key=False)
        name = (self._settings.get(["printer_name"]) or "").strip() or "OctoPrint"
        grant = client.start_link(name)
        for field in ("device_code", "user_code", "verification_uri_complete"):
            if not grant.get(field):
                raise HeraldError(f"Herald's link answer has no {field}.")
        with self._lock:
            if self._link is not None:
                self._link.cancel()
            self._link = LinkSession(client, grant, on_linked=self._store_key,
                                     on_change=lambda state: self._send_state(), logger=self._logger).start()
        self._send_state()
        return self._link.state()

    def _command_link_cancel(self, data):
        if self._link is not None:
            self._link.cancel()
            self._link = None
        self._send_state()
        return self._state()

    def _command_verify(self, data):
        self._apply_form(data)
        key = str(data.get("printer_key") or "").strip()
        if not key.startswith("hpk_"):
            raise HeraldError("A printer key starts with hpk_: copy it whole from Herald's printer page.")
        client = self._client(with_key=False)
        client.key = key
        answer = client.verify_key()
        self._store_key(str(answer.get("printer_id") or ""), key)
        return {"linked": True, "name": answer.get("name"), "herald_version": answer.get("herald_version"),
                "version_problem": version_problem(answer.get("herald_version"))}

    def _command_test(self, data):
        self._apply_form(data)
        client = self._client()
        health = client.health()
        herald_version = health.get("version")
        result = {"reachable": True, "herald_version": herald_version,
                  "version_problem": version_problem(herald_version), "plugin_version": __version__}
        if client.key:
            answer = client.verify_key()
            result.update(key_accepted=True, name=answer.get("name"))
            if self._publisher is not None and self._publisher.needs_relink:
                self._configure_publisher()  # the key works again: resume publishing
        return result

    def _command_unlink(self, data):
        client = self._client()
        if client.key:
            try:
                client.unlink()
            except HeraldError:
                if not data.get("force"):
                    raise
        self._settings.set(["printer_key"], "")
        self._settings.set(["printer_id"], "")
        self._settings.save()
        self._configure_publisher()
        return self._state()

    ##~~ moving from OctoPrint-Webhooks

    def _webhooks_settings(self):
        return self._settings.global_get(webhooks_import.PLUGIN_PATH) or {}

    def _command_webhooks_find(self, data):
        hooks = webhooks_import.find_hooks(self._webhooks_settings())
        return {"hooks": webhooks_import.summary(hooks)}

    def _command_webhooks_import(self, data):
        """At the user's word: the same webhooks in Herald, through the printer's key."""
        found = webhooks_import.find_hooks(self._webhooks_settings())
        wanted = data.get("indexes")
        indexes = [i for i in range(len(found)) if not isinstance(wanted, list) or i in wanted]
        hooks = [found[i] for i in indexes]
        if not hooks:
            return {"hooks": [], "created": 0, "already_imported": 0, "not_imported": 0}
        answer = self._client().import_webhooks(hooks)
        for result in answer.get("hooks") or []:  # Herald numbers what it was sent: map back
            if isinstance(result.get("index"), int) and result["index"] < len(indexes):
                result["index"] = indexes[result["index"]]
        return answer

    def _command_webhooks_turn_off(self, data):
        """Turn the old hooks off (webhook_enabled false) so nothing is sent twice."""
        indexes = [i for i in data.get("indexes") or [] if isinstance(i, int)]
        hooks, changed = webhooks_import.turned_off(self._webhooks_settings(), indexes)
        if changed:
            self._settings.global_set(webhooks_import.HOOKS_PATH, hooks, force=True)
            self._settings.save()
        return {"turned_off": changed, "hooks": webhooks_import.summary(hooks)}

    ##~~ Software Update hook (octoprint.plugin.softwareupdate.check_config)

    def get_update_information(self, *args, **kwargs):
        """Updates come from the linked Herald, which carries the plugin that matches it.

        A "jsondata" check reads the version Herald serves; the "pip" target is Herald's
        wheel of exactly that version, so an OctoPrint that reaches only Herald updates.
        """
        base = (self._settings.get(["herald_url"]) or "").strip().rstrip("/")
        if not base:
            return {}
        return {
            self._identifier: {
                "displayName": "Herald",
                "displayVersion": __version__,
                "type": "jsondata",
                "jsondata": base + "/plugin/octoprint-herald.json",
                "current": __version__,
                "method": "pip",
                "pip": base + "/plugin/octoprint_herald-{target_version}-py3-none-any.whl",
            }
        }

    ##~~ helpers

    def _apply_form(self, data):
        """The settings page sends what is in its form, saved or not: use and keep it."""
        changed = False
        for key in ("herald_url", "printer_name", "ca_bundle"):
            if isinstance(data.get(key), str):
                value = data[key].strip()
                if key == "herald_url":
                    value = value.rstrip("/")
                self._settings.set([key], value)
                changed = True
        if isinstance(data.get("verify_tls"), bool):
            self._settings.set_boolean(["verify_tls"], data["verify_tls"])
            changed = True
        if changed:
            self._settings.save()

    def _tls_verify(self):
        bundle = (self._settings.get(["ca_bundle"]) or "").strip()
        if bundle:
            if not os.path.isfile(bundle):
                raise HeraldError(f"The CA bundle {bundle} does not exist.")
            return bundle
        return bool(self._settings.get_boolean(["verify_tls"]))

    def _client(self, with_key=True):
        url = (self._settings.get(["herald_url"]) or "").strip()
        if not url:
            raise HeraldError("Enter Herald's address first.")
        key = self._settings.get(["printer_key"]) if with_key else None
        return HeraldClient(url, key=key or None, verify=self._tls_verify())

    def _configure_publisher(self):
        self._reconfigure_relay()  # the key, the address or the relay switch may have changed
        if self._publisher is None:
            return
        url = (self._settings.get(["herald_url"]) or "").strip()
        key = self._settings.get(["printer_key"]) or ""
        try:
            client = (HeraldClient(url, key=key, verify=self._tls_verify(), timeout=self._publisher_timeout)
                      if url and key else None)
        except HeraldError as exc:
            client = None
            self._publisher.last_error = str(exc)
        self._publisher.configure(client)

    def _store_key(self, printer_id, key):
        self._settings.set(["printer_key"], key)
        self._settings.set(["printer_id"], printer_id)
        self._settings.save()
        self._configure_publisher()
        self._logger.info("Linked to Herald as printer %s", printer_id or "(unknown id)")

    def _file_metadata(self, data):
        """The file manager's metadata of the job's file (@meta), as OctoPrint-Webhooks reads it."""
        origin, path = file_of(data)
        if path is None:
            return None
        try:
            if not self._file_manager.file_exists(origin, path):
                return None
            return self._file_manager.get_metadata(origin, path) or None
        except Exception:  # an SD file or a storage without metadata
            self._logger.debug("No metadata for %s:%s", origin, path, exc_info=True)
            return None

    def _remember_job(self, event_type, payload):
        """Remember the job that just ended (the intake thread stores it); True when it changed."""
        results = {"print.done": "completed", "print.failed": "failed", "print.cancelled": "cancelled"}
        if event_type not in results:
            return False
        previous = self._last_job or {}
        duration = payload.get("time")
        if duration is None and previous.get("path") == payload.get("path"):
            duration = previous.get("duration")
        self._last_job = {"file": payload.get("name"), "path": payload.get("path"),
                          "duration": duration, "result": results[event_type]}
        return True

    def _current_status(self):
        status = build_status(
            self._printer.get_current_data(),
            self._printer.get_current_temperatures(),
            self._printer.get_state_id(),
            self._last_job,
            publish_file_names=bool(self._settings.get_boolean(["publish_file_names"])),
        )
        # Optional in the status contract (older Heralds ignore it): the owner's consent to the
        # relay and to minting application keys, which Herald's printer page shows.
        relay = relay_settings(self._settings.get(["relay"]))
        status["relay"] = {"enabled": relay["enabled"], "mint_api_keys": relay["enabled"] and relay["mint_api_keys"],
                           "allow_control": relay["enabled"] and relay["allow_control"]}
        # Optional in the status contract: apps connected through Herald use it to find the
        # printer on the local network. Off with the "publish_local_ip" setting.
        if self._settings.get_boolean(["publish_local_ip"]):
            address = self._local_address.get(self._settings.get(["herald_url"]) or "")
            if address:
                status["local_ip"] = address
        return status

    def _intervals(self):
        return Intervals(printing=max(5, self._settings.get_int(["interval_printing"]) or 30),
                         idle=max(10, self._settings.get_int(["interval_idle"]) or 60))

    def _snapshot_url(self):
        url = (self._settings.get(["snapshot_url"]) or "").strip()
        if url:
            return url
        # The bundled classic webcam's snapshot address, when one is configured.
        return self._settings.global_get(["plugins", "classicwebcam", "snapshot"]) or None

    def _state(self):
        state = self._publisher.state() if self._publisher is not None else {"linked": False}
        state["printer_id"] = self._settings.get(["printer_id"]) or None
        state["link"] = self._link.state() if self._link is not None else None
        state["plugin_version"] = __version__
        state["relay_tunnel"] = self._tunnel.state() if self._tunnel is not None else None
        return state

    def _user_names(self):
        try:
            return sorted(user.get_id() for user in self._user_manager.get_all_users() if user.is_active)
        except Exception:
            self._logger.exception("Herald could not list OctoPrint's users")
            return []

    def _send_state(self):
        try:
            self._plugin_manager.send_plugin_message(self._identifier, {"type": "state", "state": self._state()})
        except Exception:
            self._logger.exception("Could not update the settings page")

    def _state_path(self):
        return os.path.join(self.get_plugin_data_folder(), "state.json")

    def _load_state(self):
        try:
            with open(self._state_path(), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def _save_state(self, state):
        path = self._state_path()
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(path + ".tmp", path)


__plugin_name__ = "Herald"
__plugin_version__ = __version__
__plugin_description__ = "Publishes this printer's status and print events to your Herald hub (outbound only)."
__plugin_pythoncompat__ = ">=3.9,<4"


def __plugin_load__():
    global __plugin_implementation__, __plugin_hooks__
    __plugin_implementation__ = HeraldPlugin()
    __plugin_hooks__ = {
        "octoprint.comm.protocol.gcode.received": __plugin_implementation__.on_gcode_received,
        "octoprint.comm.protocol.gcode.sent": __plugin_implementation__.on_gcode_sent,
        "octoprint.plugin.softwareupdate.check_config": __plugin_implementation__.get_update_information,
    }
