// The dashboard's live updates: an EventSource on /events/dashboard swaps printer
// cards in place, and a timer keeps time-derived text fresh between updates
// ("2 minutes ago", the countdown, the finish clock time, offline after silence).
"use strict";

(function () {
  const root = document.getElementById("dashboard");
  if (!root) return;
  const grid = document.getElementById("printer-cards");
  const empty = document.getElementById("dashboard-empty");
  const status = document.getElementById("live-status");
  const announcer = document.getElementById("live-announcer");
  const offlineAfterMs = Number(root.getAttribute("data-offline-after") || "300") * 1000;
  const zone = root.getAttribute("data-time-zone") || "UTC";
  let source = null;
  let retryDelay = 2000;
  let retryTimer = null;

  function formatter(options) {
    try {
      return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone }, options));
    } catch (e) {
      return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: "UTC" }, options));
    }
  }
  const clockFormat = formatter({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const dayFormat = formatter({ year: "numeric", month: "2-digit", day: "2-digit" });
  const weekdayFormat = formatter({ weekday: "short" });

  function clockText(ms) {
    const when = new Date(ms);
    const text = clockFormat.format(when);
    if (dayFormat.format(when) === dayFormat.format(new Date(Herald.now()))) return text;
    return weekdayFormat.format(when) + " " + text;
  }

  function setLive(state, text) {
    status.setAttribute("data-live", state);
    status.textContent = text;
  }

  function announce(text) {
    announcer.textContent = text;
  }

  // --- time-derived text, refreshed every few seconds --------------------------
  function refreshCard(card) {
    const received = Number(card.getAttribute("data-received") || Herald.now());
    const left = card.querySelector('[data-role="time-left"][data-counting]');
    if (left) {
      const seconds = Number(left.getAttribute("data-seconds")) - (Herald.now() - received) / 1000;
      const text = Herald.duration(seconds);
      if (left.textContent !== text) left.textContent = text;
    }
    const finish = card.querySelector('time[data-clock]');
    if (finish) {
      const text = clockText(Date.parse(finish.getAttribute("datetime")));
      if (finish.textContent !== text) finish.textContent = text;
    }
    const lastSeen = Date.parse(card.getAttribute("data-last-seen") || "");
    const badge = card.querySelector('[data-role="state"]');
    if (card.getAttribute("data-linked") === "true" && !Number.isNaN(lastSeen)
        && Herald.now() - lastSeen > offlineAfterMs && !card.classList.contains("is-offline")) {
      card.classList.add("is-offline");
      badge.className = "badge badge-bad";
      badge.textContent = "Offline";
      // Its last readings are not its temperatures now (the server's card shows none either).
      const temps = card.querySelector('[data-role="temps"]');
      if (temps) temps.remove();
      announce(cardName(card) + ": Offline");
    }
  }

  function refreshAll() {
    Herald.refreshTimes(root);
    grid.querySelectorAll(".printer-card").forEach(refreshCard);
  }

  function cardName(card) {
    const link = card.querySelector("h2 a");
    return link ? link.textContent : "Printer";
  }

  // --- applying updates ------------------------------------------------------------
  function parseCard(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const card = template.content.firstElementChild;
    card.setAttribute("data-received", String(Herald.now()));
    return card;
  }

  function showEmptyState() {
    const any = grid.querySelector(".printer-card") !== null;
    grid.hidden = !any;
    empty.hidden = any;
  }

  function insertSorted(card, name) {
    const others = Array.from(grid.querySelectorAll(".printer-card"));
    const after = others.find(function (other) {
      return cardName(other).localeCompare(name) > 0;
    });
    grid.insertBefore(card, after || null);
  }

  function applyCard(message) {
    const fresh = parseCard(message.html);
    const existing = document.getElementById(fresh.id);
    if (!existing) {
      insertSorted(fresh, message.name);
      showEmptyState();
      refreshCard(fresh);
      return;
    }
    const before = existing.querySelector('[data-role="state"]').textContent;
    if (existing.contains(document.activeElement)) {
      // Keep keyboard focus: update in place instead of replacing the focused link.
      Array.from(fresh.attributes).forEach(function (attr) { existing.setAttribute(attr.name, attr.value); });
      existing.className = fresh.className;
      existing.querySelector("h2 a").textContent = fresh.querySelector("h2 a").textContent;
      existing.querySelector('[data-role="state"]').replaceWith(fresh.querySelector('[data-role="state"]'));
      existing.querySelector(".card-body").replaceWith(fresh.querySelector(".card-body"));
    } else {
      existing.replaceWith(fresh);
    }
    const card = document.getElementById(fresh.id);
    refreshCard(card);
    const after = card.querySelector('[data-role="state"]').textContent;
    if (before !== after) announce(message.name + ": " + after);
  }

  function removeCards(ids) {
    ids.forEach(function (id) {
      const card = document.getElementById("printer-" + id);
      if (card) card.remove();
    });
    showEmptyState();
  }

  // --- the stream --------------------------------------------------------------
  function connect() {
    retryTimer = null;
    source = new EventSource(root.getAttribute("data-events"));
    source.addEventListener("open", function () {
      retryDelay = 2000;
      setLive("live", "Live");
    });
    source.addEventListener("snapshot", function (event) {
      const data = JSON.parse(event.data);
      Herald.setServerNow(data.server_now);
      const keep = new Set(data.ids.map(function (id) { return "printer-" + id; }));
      grid.querySelectorAll(".printer-card").forEach(function (card) {
        if (!keep.has(card.id)) card.remove();
      });
      data.cards.forEach(applyCard);
      showEmptyState();
      refreshAll();
    });
    source.addEventListener("card", function (event) {
      const data = JSON.parse(event.data);
      Herald.setServerNow(data.server_now);
      applyCard(data);
    });
    source.addEventListener("remove", function (event) {
      removeCards(JSON.parse(event.data).ids);
    });
    source.addEventListener("logout", function () {
      source.close();
      window.location.reload();
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself (the server restarted or the network blinked).
        setLive("reconnecting", "Reconnecting…");
        return;
      }
      // Closed for good (an error page, or 204 when the login ended): retry ourselves,
      // and go to the login page if the session is gone.
      source.close();
      setLive("reconnecting", "Reconnecting…");
      if (retryTimer === null) {
        retryTimer = setTimeout(probeThenConnect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60000);
      }
    });
  }

  function probeThenConnect() {
    fetch("/", { method: "HEAD", redirect: "manual", credentials: "same-origin" }).then(function (response) {
      if (response.type === "opaqueredirect") {
        window.location.reload();
      } else {
        connect();
      }
    }, function () {
      retryTimer = setTimeout(probeThenConnect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 60000);
    });
  }

  grid.querySelectorAll(".printer-card").forEach(function (card) {
    card.setAttribute("data-received", String(Herald.now()));
  });
  Herald.setServerNow(root.getAttribute("data-server-now"));
  refreshAll();
  setInterval(refreshAll, 5000);
  if (window.EventSource) {
    connect();
  } else {
    setLive("off", "Reload the page for new status");
  }
})();
