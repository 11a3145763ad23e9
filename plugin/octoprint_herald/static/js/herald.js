/*
 * OctoPrint-Herald settings page: link, verify, test, unlink, and the live publishing state.
 */
$(function () {
    function HeraldViewModel(parameters) {
        var self = this;
        self.settingsViewModel = parameters[0];
        self.settings = undefined;

        self.state = ko.observable({});
        self.busy = ko.observable(false);
        self.message = ko.observable("");
        self.messageOk = ko.observable(true);
        self.manualKey = ko.observable("");
        self.relayUsers = ko.observableArray([]);  // OctoPrint users minted keys may act for

        self.linked = ko.pureComputed(function () {
            return !!self.state().linked;
        });
        self.link = ko.pureComputed(function () {
            return self.state().link || null;
        });
        self.linkWaiting = ko.pureComputed(function () {
            var link = self.link();
            return !!link && link.status === "waiting";
        });
        self.linkUserCode = ko.pureComputed(function () {
            var link = self.link();
            return link ? link.user_code : "";
        });
        self.linkUri = ko.pureComputed(function () {
            var link = self.link();
            return link ? link.verification_uri_complete : "#";
        });

        self.statusClass = ko.pureComputed(function () {
            var s = self.state();
            if (s.needs_relink) return "alert-error";
            if (s.linked && s.last_error) return "alert-warning";
            if (s.linked) return "alert-success";
            return "alert-info";
        });
        self.statusTitle = ko.pureComputed(function () {
            var s = self.state();
            var link = self.link();
            if (link && link.status === "waiting") return gettext("Linking:");
            if (s.needs_relink) return gettext("Publishing stopped:");
            if (s.linked && s.last_error) return gettext("Linked, but publishing fails:");
            if (s.linked) return gettext("Linked and publishing.");
            return gettext("Not linked.");
        });
        self.statusDetail = ko.pureComputed(function () {
            var s = self.state();
            var link = self.link();
            var parts = [];
            if (link && link.status !== "linked") parts.push(link.message);
            if (s.last_error) parts.push(s.last_error);
            if (s.linked && s.retry_in) parts.push(_.sprintf(gettext("Next try in %(s)s s."), {s: s.retry_in}));
            if (s.linked && s.last_success) {
                parts.push(_.sprintf(gettext("Last publish: %(when)s."), {when: new Date(s.last_success).toLocaleString()}));
            }
            if (s.linked && s.queued_events) {
                parts.push(_.sprintf(gettext("%(n)s events waiting to be sent."), {n: s.queued_events}));
            }
            if (!s.linked && !link) parts.push(gettext("Enter Herald's address, then press \"Link this printer\"."));
            return parts.join(" ");
        });
        // The relay tunnel as the plugin sees it (tunnel.py's state()): shown under "Remote access".
        self.relayTunnelText = ko.pureComputed(function () {
            var t = self.state().relay_tunnel;
            if (!t || !t.enabled) return "";
            if (t.connected) return gettext("Connected to Herald: remote access works now.");
            return gettext("Not connected to Herald yet.") + (t.last_error ? " " + t.last_error : "");
        });
        self.relayTunnelClass = ko.pureComputed(function () {
            var t = self.state().relay_tunnel;
            return t && t.connected ? "alert-success" : "alert-warning";
        });
        self.messageClass = ko.pureComputed(function () {
            return self.messageOk() ? "alert-success" : "alert-error";
        });

        self.formValues = function () {
            var h = self.settings.plugins.herald;
            return {
                herald_url: h.herald_url(),
                printer_name: h.printer_name(),
                ca_bundle: h.ca_bundle(),
                verify_tls: !!h.verify_tls()
            };
        };

        self.say = function (text, ok) {
            self.messageOk(ok !== false);
            self.message(text);
        };

        self.failure = function (xhr) {
            var text = gettext("The request failed.");
            if (xhr && xhr.responseJSON && xhr.responseJSON.error) {
                text = xhr.responseJSON.error;
            } else if (xhr && xhr.status === 403) {
                text = gettext("Only an administrator can change the Herald link.");
            }
            self.say(text, false);
        };

        self.refresh = function () {
            return OctoPrint.simpleApiGet("herald").done(function (state) {
                var users = (state.relay_users || []).slice();
                var chosen = self.settings.plugins.herald.relay.api_key_user();
                if (chosen && users.indexOf(chosen) < 0) users.push(chosen);  // keep a saved choice visible
                self.relayUsers(users);
                self.state(state);
            });
        };

        // Commands run on the plugin's own thread (they call Herald, which may be slow):
        // OctoPrint answers 202 at once and the result comes as a plugin message. Polling
        // the command's result as well covers a socket that reconnects meanwhile.
        self.pending = {};

        self.settle = function (entry) {
            var waiting = self.pending[entry.id];
            if (!waiting || entry.status === "running") return;
            delete self.pending[entry.id];
            clearInterval(waiting.timer);
            if (_.isEmpty(self.pending)) self.busy(false);
            if (entry.status === "done") {
                waiting.deferred.resolve(entry.result);
            } else {
                waiting.deferred.reject({responseJSON: {error: entry.error}, status: entry.http_status});
            }
        };

        self.command = function (name, data) {
            var deferred = $.Deferred();
            self.busy(true);
            OctoPrint.simpleApiCommand("herald", name, data || {})
                .done(function (entry) {
                    var timer = setInterval(function () {
                        OctoPrint.getWithQuery(OctoPrint.getSimpleApiUrl("herald"), {command: entry.id}).done(self.settle);
                    }, 2000);
                    self.pending[entry.id] = {deferred: deferred, timer: timer};
                    self.settle(entry);
                })
                .fail(function (xhr) {
                    if (_.isEmpty(self.pending)) self.busy(false);
                    deferred.reject(xhr);
                });
            return deferred.promise();
        };

        self.startLink = function () {
            self.say("");
            // Open the tab now, while the click counts as the user's: browsers block
            // windows opened later from a network callback.
            var tab = window.open("", "_blank");
            self.command("link", self.formValues())
                .done(function (link) {
                    if (tab) {
                        tab.location.href = link.verification_uri_complete;
                    }
                    self.refresh();
                })
                .fail(function (xhr) {
                    if (tab) tab.close();
                    self.failure(xhr);
                });
        };

        self.verifyKey = function () {
            var data = self.formValues();
            data.printer_key = (self.manualKey() || "").trim();
            self.command("verify", data)
                .done(function (answer) {
                    self.manualKey("");
                    var text = _.sprintf(gettext("Key accepted: linked as \"%(name)s\"."), {name: answer.name || ""});
                    if (answer.version_problem) text += " " + answer.version_problem;
                    self.say(text, !answer.version_problem);
                    self.refresh();
                })
                .fail(self.failure);
        };

        self.testConnection = function () {
            self.command("test", self.formValues())
                .done(function (answer) {
                    var text = _.sprintf(gettext("Herald %(v)s answers."), {v: answer.herald_version || "?"});
                    if (answer.key_accepted) {
                        text += " " + _.sprintf(gettext("It knows this printer as \"%(name)s\"."), {name: answer.name || ""});
                    } else {
                        text += " " + gettext("This printer is not linked yet.");
                    }
                    if (answer.version_problem) text += " " + answer.version_problem;
                    self.say(text, !answer.version_problem);
                    self.refresh();
                })
                .fail(self.failure);
        };

        self.unlink = function () {
            showConfirmationDialog({
                message: gettext("Herald will stop receiving this printer's status and events. The printer stays in Herald's list as unlinked."),
                proceed: gettext("Unlink"),
                onproceed: function () {
                    self.command("unlink", {})
                        .done(function (state) {
                            self.state(state);
                            self.say(gettext("Unlinked."));
                        })
                        .fail(function (xhr) {
                            self.failure(xhr);
                        });
                }
            });
        };

        // -- moving from OctoPrint-Webhooks ------------------------------------------
        self.owhHooks = ko.observableArray([]);
        self.owhResults = ko.observable({});
        self.owhImported = ko.pureComputed(function () {
            var results = self.owhResults();
            return _.filter(self.owhHooks(), function (hook) {
                var r = results[hook.index];
                return hook.enabled && r && (r.status === "created" || r.status === "already_imported");
            });
        });
        self.owhResultText = function (index) {
            var r = self.owhResults()[index];
            if (!r) return gettext("not yet");
            if (r.status === "created") return _.sprintf(gettext("created as \"%(name)s\""), {name: r.name});
            if (r.status === "already_imported") return _.sprintf(gettext("already there as \"%(name)s\""), {name: r.name});
            return _.sprintf(gettext("not created: %(why)s"), {why: r.error || ""});
        };
        self.owhLost = function (index) {
            var r = self.owhResults()[index];
            return r && r.not_carried_over && r.not_carried_over.length
                ? _.map(r.not_carried_over, function (what) { return gettext("Not carried over: ") + what; }) : [];
        };
        self.owhFind = function () {
            return self.command("webhooks_find", {}).done(function (answer) {
                self.owhHooks(answer.hooks || []);
            });
        };
        self.owhImport = function () {
            self.command("webhooks_import", {})
                .done(function (answer) {
                    var results = {};
                    _.each(answer.hooks || [], function (r) { results[r.index] = r; });
                    self.owhResults(results);
                    var text = _.sprintf(gettext("Herald: %(c)s created, %(a)s already there, %(n)s not created."),
                        {c: answer.created || 0, a: answer.already_imported || 0, n: answer.not_imported || 0});
                    if (self.owhImported().length) text += " " + gettext("Turn the old hooks off so nothing is sent twice.");
                    self.say(text, !answer.not_imported);
                })
                .fail(self.failure);
        };
        self.owhTurnOff = function () {
            var indexes = _.map(self.owhImported(), function (hook) { return hook.index; });
            showConfirmationDialog({
                message: gettext("OctoPrint-Webhooks will stop sending these hooks; Herald sends them from now on."),
                proceed: gettext("Turn off"),
                onproceed: function () {
                    self.command("webhooks_turn_off", {indexes: indexes})
                        .done(function (answer) {
                            self.owhHooks(answer.hooks || []);
                            self.say(_.sprintf(gettext("%(n)s old hooks turned off."), {n: (answer.turned_off || []).length}));
                        })
                        .fail(self.failure);
                }
            });
        };

        self.onBeforeBinding = function () {
            self.settings = self.settingsViewModel.settings;
        };

        self.onSettingsShown = function () {
            self.say("");
            self.refresh();
            self.owhFind();
        };

        self.onDataUpdaterPluginMessage = function (plugin, data) {
            if (plugin !== "herald" || !data) return;
            if (data.type === "command" && data.command) {
                self.settle(data.command);
                return;
            }
            if (data.type !== "state") return;
            var wasWaiting = self.linkWaiting();
            self.state(data.state);
            var link = data.state.link;
            if (wasWaiting && link && link.status === "linked") {
                self.say(link.message);
            } else if (wasWaiting && link && link.status !== "waiting") {
                self.say(link.message, false);
            }
        };
    }

    OCTOPRINT_VIEWMODELS.push({
        construct: HeraldViewModel,
        dependencies: ["settingsViewModel"],
        elements: ["#herald_settings"]
    });
});
