// Puts the browser's time zone (an IANA name such as Europe/Berlin) into the hidden
// browser_time_zone fields of the setup, signup and login forms; Herald adopts it while the
// user has chosen no zone of their own in Account. No inline script: the CSP forbids it.
(function () {
  "use strict";
  function fill() {
    let zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return;
    }
    document.querySelectorAll("input[data-browser-time-zone]").forEach(function (input) {
      input.value = zone;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fill);
  else fill();
})();
