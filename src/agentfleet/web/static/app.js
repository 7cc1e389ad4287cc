// agentfleet dashboard: live regions and action buttons, no framework, no build step.
(function () {
  "use strict";
  var pollMs = parseInt(document.body.getAttribute("data-poll-ms") || "0", 10);
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var etag = null;
  var busy = null;  // the refresh in flight
  var dot = document.getElementById("live-dot");

  // `stated`: the status the message says the job or plan is in ("Plan 3 is running."),
  // so that it goes once the page shows another: a message never contradicts the badge.
  var flashStated = null;
  function flash(text, bad, stated) {
    var el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = bad ? "flash bad" : "flash";
    el.hidden = false;
    flashStated = stated || null;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { el.hidden = true; }, bad ? 12000 : 8000);
  }
  function shownState() {
    var el = document.querySelector("[data-state]");
    return el ? el.getAttribute("data-state") : null;
  }
  function dropStaleFlash() {
    var el = document.getElementById("flash");
    var now = shownState();
    if (!el || el.hidden || !flashStated || now === null || now === flashStated) return;
    el.hidden = true;
    flashStated = null;
  }

  // Losing the server is said in words, not only by the dot's colour, until it answers.
  var lostSince = null;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(d) { return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); }
  function outage(what) {
    var el = document.getElementById("outage");
    if (dot) {
      dot.hidden = false;
      dot.classList.toggle("stale", !!what);
      dot.title = what ? "Live updates: no contact with the server" : "Live updates";
    }
    if (!el) return;
    if (!what) { lostSince = null; el.hidden = true; el.textContent = ""; return; }
    lostSince = lostSince || new Date();
    el.textContent = what + " at " + clock(lostSince) + "; retrying\u2026";
    el.hidden = false;
  }

  // Keep what the reader opened or scrolled when a region is replaced.
  function openKeys(root) {
    var keys = {};
    root.querySelectorAll("details[data-key]").forEach(function (d) {
      keys[d.getAttribute("data-key")] = d.open;
    });
    return keys;
  }
  // A log follows its newest line while it is scrolled to the end; scrolled up, it stays.
  var SCROLLERS = ".log, ol.timeline";
  function scrollKey(el, i) { return el.getAttribute("data-log") || "#" + i; }
  function toEnd(el) { el.scrollTop = el.scrollHeight; }
  function scrolls(root) {
    var out = {};
    root.querySelectorAll(SCROLLERS).forEach(function (el, i) {
      var atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
      out[scrollKey(el, i)] = { top: el.scrollTop, atEnd: atEnd };
    });
    return out;
  }

  function swap(doc) {
    document.querySelectorAll("[data-live][id]").forEach(function (region) {
      var fresh = doc.getElementById(region.id);
      if (!fresh) return;
      region.hidden = fresh.hidden;
      if (region.className !== fresh.className) region.className = fresh.className;
      var state = fresh.getAttribute("data-state");
      if (state !== null) region.setAttribute("data-state", state);
      // A region with a key (one holding inputs) is replaced only when its key changes.
      var key = fresh.getAttribute("data-live-key");
      if (key !== null) {
        if (key === region.getAttribute("data-live-key")) return;
        region.setAttribute("data-live-key", key);
      }
      if (fresh.innerHTML === region.innerHTML) return;
      var open = openKeys(region);
      var sc = scrolls(region);
      region.innerHTML = fresh.innerHTML;
      region.querySelectorAll("details[data-key]").forEach(function (d) {
        var key = d.getAttribute("data-key");
        if (Object.prototype.hasOwnProperty.call(open, key)) d.open = open[key];
      });
      region.querySelectorAll(SCROLLERS).forEach(function (el, i) {
        var s = sc[scrollKey(el, i)];
        if (!s) { if (el.matches(".log")) toEnd(el); return; }  // a new run's log
        el.scrollTop = s.atEnd ? el.scrollHeight : s.top;
      });
    });
    var title = doc.querySelector("title");
    if (title) document.title = title.textContent;
    dropStaleFlash();
  }

  function refresh() {
    if (document.hidden) return Promise.resolve();
    if (busy) return busy.then(refresh);  // after an action: what the page shows next
    var headers = { "X-Live": "1" };
    if (etag) headers["If-None-Match"] = etag;
    busy = fetch(location.href, { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (resp) {
        if (resp.status === 304) { outage(null); return; }
        if (resp.status === 401) {
          outage(null);
          flash("Signed out: sign in again to see live updates.", true);
          pollMs = 0;
          return;
        }
        if (resp.status === 502 || resp.status === 504) {  // a proxy in front: no server behind it
          outage("Lost contact with the server");
          return;
        }
        if (!resp.ok) { outage("Live updates failed (the server answered " + resp.status + ")"); return; }
        outage(null);
        etag = resp.headers.get("ETag");
        return resp.text().then(function (html) {
          swap(new DOMParser().parseFromString(html, "text/html"));
        });
      })
      .catch(function () { outage("Lost contact with the server"); })
      .then(function () { busy = null; });
    return busy;
  }

  function loop() {
    if (!pollMs) return;
    refresh().then(function () { setTimeout(loop, pollMs); });
  }

  function describe(body, resp) {
    if (body && body.message) return body.message;
    if (body && body.error) return body.error.message || body.error.code;
    return resp.ok ? "Done." : "Request failed (" + resp.status + ").";
  }

  // The status an answer says its job or plan is now in, if it says one.
  function stated(body) {
    if (!body) return null;
    var thing = body.plan || body.job;
    if (thing && thing.status) return thing.status;
    return (body.error && body.error.status) || null;
  }

  function act(button) {
    var url = button.getAttribute("data-action");
    var question = button.getAttribute("data-confirm");
    var payload = {};
    var field = button.getAttribute("data-field");
    var input = null;
    if (field) {
      input = document.getElementById(button.getAttribute("data-input"));
      if (input && input.value.trim()) payload[field] = input.value.trim();
      if (!payload[field]) question = button.getAttribute("data-confirm-empty") || question;
    }
    var checkpoint = button.getAttribute("data-checkpoint");
    if (checkpoint) payload.checkpoint = checkpoint;  // the pause this page showed
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(payload)
    })
      .then(function (resp) {
        return resp.json().catch(function () { return null; }).then(function (body) {
          var bad = !resp.ok || (body && body.ok === false);
          if (!bad && input) input.value = "";
          var text = describe(body, resp);
          if (resp.status === 401) text = "Sign in to do that: " + text;
          flash(text, bad, stated(body));
        });
      })
      .catch(function () { flash("The server did not answer.", true); })
      .then(function () { button.disabled = false; etag = null; return refresh(); });
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    ev.preventDefault();
    act(button);
  });
  // Logs open at their newest line, and so does a run's log when its run is opened.
  document.querySelectorAll(".log").forEach(toEnd);
  document.addEventListener("click", function (ev) {
    var summary = ev.target.closest("details.run > summary");
    if (!summary) return;
    var run = summary.parentElement;
    setTimeout(function () { if (run.open) run.querySelectorAll(".log").forEach(toEnd); }, 0);
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  if (pollMs) setTimeout(loop, pollMs);
})();
