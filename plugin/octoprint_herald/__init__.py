"""OctoPrint-Herald: link this printer to a Herald hub and publish its status and events.

Every call to Herald is outbound, from a worker thread, with timeouts. OctoPrint's own
threads only enqueue: events go to an outbox on disk, status requests set a flag.
"""

from __future__ import annotations

import json
import os
import threading

import flask
import octoprint.plugin
from octoprint.access.permissions import Permissions

from .client import HeraldClient, HeraldError, version_problem
from .linking import LinkSession
from .mapping import STATUS_EVENTS, EventMapper, build_status, hide_file_names, json_safe
from .outbox import Outbox
from .publisher import Intervals, Publisher
from .version import __version__

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
    def __init__(self) -> None:
        self._mapper = EventMapper()
        self._publisher: Publisher | None = None
        self._link: LinkSession | None = None
        self._last_job: dict | None = None
        self._lock = threading.RLock()

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
            "attach_snapshot": False,
            "snapshot_url": "",
            "interval_printing": 30,
            "interval_idle": 60,
            "send_thumbnail": True,
            "webcam_interval": 0,  # minutes between webcam snapshots while printing; 0 = off
        }

    def get_settings_version(self):
        return 1

    def on_settings_migrate(self, target, current):
        # Version 1 is the first release: settings without a version come from a
        # pre-release build and only need the address normalised.
        if current is None or current < 1:
            url = self._settings.get(["herald_url"]) or ""
            if url != url.strip().rstrip("/"):
                self._settings.set(["herald_url"], url.strip().rstrip("/"))

    def get_settings_restricted_paths(self):
        return {"admin": [["printer_key"]]}

    def on_settings_save(self, data):
        plugin_data = data if isinstance(data, dict) else {}
        for key in _COMMAND_ONLY_SETTINGS:
            plugin_data.pop(key, None)
        if "herald_url" in plugin_data and isinstance(plugin_data["herald_url"], str):
            plugin_data["herald_url"] = plugin_data["herald_url"].strip().rstrip("/")
        result = octoprint.plugin.SettingsPlugin.on_settings_save(self, plugin_data)
        self._configure_publisher()
        return result

    ##~~ StartupPlugin / ShutdownPlugin mixins

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

    def on_shutdown(self):
        if self._link is not None:
            self._link.cancel()
        if self._publisher is not None:
            self._publisher.stop(timeout=10)

    ##~~ EventHandlerPlugin mixin

    def on_event(self, event, payload):
        try:
            self._handle_event(event, payload or {})
        except Exception:  # never raise into OctoPrint
            self._logger.exception("Herald could not handle the %s event", event)

    def _handle_event(self, event, payload):
        # Mapping and queueing happen under one lock: OctoPrint calls plugins from several
        # threads (progress reports each get their own), and the outbox order is the order
        # Herald sees.
        with self._lock:
            mapped = self._mapper.on_event(event, payload)
            for event_type, event_payload in mapped:
                self._remember_job(event_type, event_payload)
            if event == "PrintFailed" and not mapped:
                self._remember_job("print.cancelled", payload)  # fills the duration in
            for event_type, event_payload in mapped:
                self._enqueue(event_type, event_payload)
        if (mapped or event in STATUS_EVENTS) and self._publisher is not None:
            self._publisher.request_status()
        if event == "PrintStarted" and self._publisher is not None:
            self._request_thumbnail(payload)

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
        try:
            with self._lock:
                events = self._mapper.on_progress(storage, path, progress)
                for event_type, payload in events:
                    self._enqueue(event_type, payload)
            if events and self._publisher is not None:
                self._publisher.request_status()  # progress is news: an unchanged status is skipped
        except Exception:
            self._logger.exception("Herald could not handle a progress report")

    ##~~ gcode hooks (serial thread: cheap checks only)

    def on_gcode_received(self, comm, line, *args, **kwargs):
        try:
            if "paused for user" in line or line.startswith("ok"):
                with self._lock:
                    events = self._mapper.on_received_line(line)
                    for event_type, payload in events:
                        self._enqueue(event_type, payload)
        except Exception:
            self._logger.exception("Herald could not inspect a firmware line")
        return line

    def on_gcode_sent(self, comm, phase, cmd, cmd_type, gcode, *args, **kwargs):
        try:
            if gcode == "M600":
                with self._lock:
                    events = self._mapper.on_sent_command(gcode)
                    for event_type, payload in events:
                        self._enqueue(event_type, payload)
        except Exception:
            self._logger.exception("Herald could not inspect a sent command")

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
        return {"link": [], "link_cancel": [], "verify": ["printer_key"], "test": [], "unlink": []}

    def on_api_get(self, request):
        if not Permissions.SETTINGS.can():
            flask.abort(403)
        return flask.jsonify(self._state())

    def on_api_command(self, command, data):
        if not Permissions.SETTINGS.can():
            flask.abort(403)
        try:
            handler = getattr(self, f"_command_{command}")
            return flask.jsonify(handler(data or {}))
        except HeraldError as exc:
            return flask.make_response(flask.jsonify({"error": str(exc), "status": exc.status}), 400)

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
        if self._publisher is None:
            return
        url = (self._settings.get(["herald_url"]) or "").strip()
        key = self._settings.get(["printer_key"]) or ""
        try:
            client = HeraldClient(url, key=key, verify=self._tls_verify()) if url and key else None
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

    def _enqueue(self, event_type, payload):
        publisher = self._publisher
        if publisher is None or not publisher.accepting:
            return
        printer_data = json_safe(self._printer.get_current_data())
        payload = json_safe(payload)
        if not self._settings.get_boolean(["publish_file_names"]):
            payload, printer_data = hide_file_names(payload, printer_data)
        # Progress comes 99 times a print: pictures go with the events people look at.
        snapshot = event_type != "print.progress" and bool(self._settings.get_boolean(["attach_snapshot"]))
        publisher.enqueue_event(event_type, payload, printer_data, snapshot=snapshot)

    def _remember_job(self, event_type, payload):
        results = {"print.done": "completed", "print.failed": "failed", "print.cancelled": "cancelled"}
        if event_type not in results:
            return
        previous = self._last_job or {}
        duration = payload.get("time")
        if duration is None and previous.get("path") == payload.get("path"):
            duration = previous.get("duration")
        self._last_job = {"file": payload.get("name"), "path": payload.get("path"),
                          "duration": duration, "result": results[event_type]}
        self._save_state({"last_job": self._last_job})

    def _current_status(self):
        return build_status(
            self._printer.get_current_data(),
            self._printer.get_current_temperatures(),
            self._printer.get_state_id(),
            self._last_job,
            publish_file_names=bool(self._settings.get_boolean(["publish_file_names"])),
        )

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
        return state

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
