// Behaviour every page may use (loaded by base.html). No inline script anywhere:
// pages opt in with data attributes (see docs/ui.md).
//   <button data-copy="#key">Copy</button>   copies the text of #key
//   <form data-confirm="Remove Prusa?">       asks before submitting
//   <time datetime="ISO" data-ago>            kept as "x minutes ago"
//   .card / .table-wrap that scrolls sideways  made keyboard-focusable
"use strict";

window.Herald = (function () {
  // Server time minus browser time, so "ago" texts are right on a badly set clock.
  let skewMs = 0;

  function setServerNow(iso) {
    const server = Date.parse(iso);
    if (!Number.isNaN(server)) skewMs = server - Date.now();
  }

  function now() {
    return Date.now() + skewMs;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function timeAgo(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "never";
    const seconds = Math.max(0, Math.round((now() - then) / 1000));
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return plural(minutes, "minute") + " ago";
    const hours = Math.round(minutes / 60);
    if (hours < 24) return plural(hours, "hour") + " ago";
    return plural(Math.round(hours / 24), "day") + " ago";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min";
    const h = Math.floor(minutes / 60);
    const m = minutes % 60;
    if (h < 24) return m ? h + " h " + m + " min" : h + " h";
    const d = Math.floor(h / 24);
    return (h % 24) ? d + " d " + (h % 24) + " h" : d + " d";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-ago]").forEach(function (el) {
      const text = timeAgo(el.getAttribute("datetime"));
      if (el.textContent !== text) el.textContent = text;
    });
  }

  function copy(button) {
    const target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    const text = (target.value !== undefined ? target.value : target.textContent).trim();
    const done = function (ok) {
      const label = button.getAttribute("data-copy-label") || button.textContent;
      button.setAttribute("data-copy-label", label);
      button.textContent = ok ? "Copied" : "Select and copy by hand";
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
    } else {
      const range = document.createRange();
      range.selectNodeContents(target);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (button) {
      event.preventDefault();
      copy(button);
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    const question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // A card or table wrapper that scrolls sideways (a wide table on a phone) must be
  // reachable by keyboard to be scrolled: make it focusable while it scrolls.
  function keyboardScrollable() {
    document.querySelectorAll(".card, .table-wrap").forEach(function (el) {
      const scrolls = el.scrollWidth > el.clientWidth + 1;
      if (scrolls && !el.hasAttribute("tabindex")) {
        el.setAttribute("tabindex", "0");
        el.setAttribute("data-scroll-focus", "");
      } else if (!scrolls && el.hasAttribute("data-scroll-focus")) {
        el.removeAttribute("tabindex");
        el.removeAttribute("data-scroll-focus");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.querySelector("[data-server-now]");
    if (root) setServerNow(root.getAttribute("data-server-now"));
    refreshTimes();
    setInterval(refreshTimes, 15000);
    keyboardScrollable();
    let resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(keyboardScrollable, 200);
    });
  });

  return { now: now, setServerNow: setServerNow, timeAgo: timeAgo, duration: duration, refreshTimes: refreshTimes };
})();
