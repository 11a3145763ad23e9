"""OctoPrint application keys minted by the plugin at Herald's request, in a real OctoPrint.

A probe plugin dropped into OctoPrint's plugin folder hands control messages to the Herald
plugin's ``appkeys.handle_control``, as the tunnel will: the key it mints works on OctoPrint's
own API, acts for the chosen user, and stops working once revoked.
"""

from __future__ import annotations

import pytest
import requests

from tests.support.octoprint import OctoPrintServer

pytestmark = pytest.mark.slow

PROBE = '''
import flask
import octoprint.plugin


class ControlProbe(octoprint.plugin.SimpleApiPlugin):
    def get_api_commands(self):
        return {"control": ["op"]}

    def is_api_protected(self):
        return True

    def on_api_command(self, command, data):
        from octoprint_herald.appkeys import handle_control
        herald = self._plugin_manager.get_plugin_info("herald").implementation
        return flask.jsonify(handle_control(herald, data["op"], data.get("args") or {}))


__plugin_name__ = "Herald control probe"
__plugin_pythoncompat__ = ">=3.9,<4"
__plugin_implementation__ = ControlProbe()
'''


@pytest.fixture(scope="module")
def octoprint(tmp_path_factory):
    basedir = tmp_path_factory.mktemp("appkeys") / "octoprint"
    (basedir / "plugins").mkdir(parents=True)
    (basedir / "plugins" / "herald_control_probe.py").write_text(PROBE)
    server = OctoPrintServer(basedir, plugin_settings={"herald_url": "http://127.0.0.1:9"})
    server.start()
    try:
        made = server.api("POST", "/api/access/users", json={
            "name": "apps", "password": "apps-password-123", "active": True, "groups": ["users"]})
        assert made.status_code == 200, made.text
        yield server
    finally:
        server.stop()


def control(server: OctoPrintServer, op: str, **args) -> dict:
    response = server.api("POST", "/api/plugin/herald_control_probe", json={"command": "control", "op": op,
                                                                           "args": args})
    assert response.status_code == 200, response.text
    return response.json()


def set_relay(server: OctoPrintServer, **relay) -> None:
    saved = server.api("POST", "/api/settings", json={"plugins": {"herald": {"relay": relay}}})
    assert saved.status_code == 200, saved.text


def who(server: OctoPrintServer, key: str) -> requests.Response:
    return requests.get(server.url + "/api/currentuser", headers={"X-Api-Key": key}, timeout=15)


def test_minting_is_refused_until_the_owner_allows_it(octoprint: OctoPrintServer):
    settings = octoprint.api("GET", "/api/settings").json()["plugins"]["herald"]
    assert settings["relay"] == {"enabled": False, "mint_api_keys": False, "api_key_user": "",
                                 "allow_control": False}
    assert control(octoprint, "mint_api_key", app="OctoPod")["error"] == "relay_off"
    set_relay(octoprint, enabled=True)
    assert control(octoprint, "mint_api_key", app="OctoPod")["error"] == "minting_off"
    set_relay(octoprint, mint_api_keys=True)
    refused = control(octoprint, "mint_api_key", app="OctoPod")
    assert refused["error"] == "no_user" and "user" in refused["message"]
    set_relay(octoprint, api_key_user="ghost")
    refused = control(octoprint, "mint_api_key", app="OctoPod")
    assert refused["error"] == "unknown_user" and "ghost" in refused["message"]
    assert "ghost" not in octoprint.api("GET", "/api/plugin/herald").json()["relay_users"]


def test_a_minted_key_works_for_the_chosen_user_and_stops_after_revoke(octoprint: OctoPrintServer):
    set_relay(octoprint, enabled=True, mint_api_keys=True, api_key_user="apps")
    assert octoprint.api("GET", "/api/plugin/herald").json()["relay_users"] == ["admin", "apps"]
    minted = control(octoprint, "mint_api_key", app="OctoPod · Herald 1a2b3c4d")
    key = minted["key"]
    assert who(octoprint, key).json()["name"] == "apps"
    assert requests.get(octoprint.url + "/api/printer", headers={"X-Api-Key": key}, timeout=15).status_code in (
        200, 409)  # the API answers as that user (409: the printer is not operational)
    # OctoPrint lists it as an application key of that user
    listed = octoprint.api("GET", "/api/plugin/appkeys", params={"all": "true"}).json()["keys"]
    assert any(k["app_id"] == "OctoPod · Herald 1a2b3c4d" and k["user_id"] == "apps" for k in listed)
    # a retry of the same request gets the same key, not a second one
    assert control(octoprint, "mint_api_key", app="OctoPod · Herald 1a2b3c4d")["key"] == key

    # turning minting off does not stop the owner's revoke from ending what was minted
    set_relay(octoprint, mint_api_keys=False)
    assert control(octoprint, "revoke_api_key", key=key) == {"revoked": True}
    assert who(octoprint, key).json().get("name") != "apps"
    assert control(octoprint, "revoke_api_key", key=key)["error"] == "not_minted"


def test_keys_herald_did_not_make_are_never_handed_out_nor_revoked(octoprint: OctoPrintServer):
    set_relay(octoprint, enabled=True, mint_api_keys=True, api_key_user="admin")
    own = octoprint.api("POST", "/api/plugin/appkeys", json={"command": "generate", "app": "My script",
                                                                   "user": "admin"})
    assert own.status_code == 200, own.text
    own_key = own.json()["api_key"]
    assert control(octoprint, "mint_api_key", app="my script")["error"] == "name_taken"
    assert control(octoprint, "revoke_api_key", key=own_key)["error"] == "not_minted"
    assert who(octoprint, own_key).json()["name"] == "admin"
    assert control(octoprint, "mint_api_key", app="x")["error"] == "invalid_app_name"
    assert control(octoprint, "format_disk")["error"] == "unknown_op"


def test_the_settings_page_explains_remote_access(octoprint: OctoPrintServer):
    session = requests.Session()
    session.get(octoprint.url + "/", timeout=30)  # the login page sets OctoPrint's CSRF cookie
    csrf = next(value for name, value in session.cookies.items() if name.startswith("csrf_token"))
    login = session.post(octoprint.url + "/api/login", json={"user": "admin", "pass": "octoprint-test-password",
                                                            "remember": False}, headers={"X-CSRF-Token": csrf},
                         timeout=15)
    assert login.status_code == 200, login.text
    page = session.get(octoprint.url + "/", timeout=30).text
    assert "Remote access (relay)" in page and 'id="herald_relay_user"' in page
    assert "OctoPrint\u2019s own login" in page or "OctoPrint's own login" in page or "OctoPrint&#39;s own login" in page
