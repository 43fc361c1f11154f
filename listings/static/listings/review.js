// The review workbench: keyboard decisions, the next listing fetched as an
// HTML fragment from the admin views (no page reload). Shortcuts: see the
// help panel (?) and docs/moderation.md.
"use strict";
(function () {
  const app = document.getElementById("review-app");
  if (!app) { return; }
  const container = document.getElementById("review-item-container");
  const reasonsPanel = document.getElementById("review-reasons");
  const helpPanel = document.getElementById("review-help");
  const note = document.getElementById("review-note");
  const status = document.getElementById("review-status");
  const csrfToken = app.querySelector("input[name=csrfmiddlewaretoken]").value;
  const reasonCodes = Array.from(reasonsPanel.querySelectorAll("[data-reason-code]")).map((item) => item.dataset.reasonCode);
  // What the screen did, for the curious (and the browser test).
  const stats = window.reviewStats = { decisions: 0, skips: 0, undos: 0, keystrokes: 0, fragments: 0 };
  let busy = false;

  function item() { return document.getElementById("review-item"); }

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  async function load(url, options) {
    busy = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", ...options });
      if (!response.ok) {
        let message = `The server answered ${response.status}.`;
        try { message = (await response.json()).error.message; } catch (ignored) { /* not JSON */ }
        say(message, true);
        return false;
      }
      container.innerHTML = await response.text();
      stats.fragments += 1;
      return true;
    } catch (error) {
      say(`Network error: ${error.message}`, true);
      return false;
    } finally {
      busy = false;
    }
  }

  function post(url, fields) {
    const body = new URLSearchParams(fields);
    return load(url, { method: "POST", body, headers: { "X-CSRFToken": csrfToken } });
  }

  async function decide(decision, reasonCode) {
    const current = item();
    if (!current || !current.dataset.listingId) { return; }
    const ok = await post(current.dataset.decideUrl, { decision, reason_code: reasonCode || "", note: note.value });
    if (ok) {
      stats.decisions += 1;
      say(`#${current.dataset.listingId} ${decision === "approve" ? "approved" : "rejected (" + reasonCode + ")"}.`);
      note.value = "";
    }
  }

  async function skip() {
    const current = item();
    if (!current || !current.dataset.listingId) { return; }
    if (await post(app.dataset.nextUrl, { skip: current.dataset.listingId })) {
      stats.skips += 1;
      say(`#${current.dataset.listingId} skipped.`);
    }
  }

  async function undo() {
    if (await post(app.dataset.undoUrl, {})) {
      stats.undos += 1;
      say("Undone: the listing is back.");
    }
  }

  function toggle(panel, show) {
    panel.hidden = show === undefined ? !panel.hidden : !show;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.target === note) {
      if (event.key === "Escape") { note.blur(); event.preventDefault(); }
      return;
    }
    if (event.target.closest && event.target.closest("input, textarea, select")) { return; }
    if (busy) { event.preventDefault(); return; }
    const key = event.key;
    stats.keystrokes += 1;
    if (!reasonsPanel.hidden) {
      const index = Number.parseInt(key, 10) - 1;
      if (index >= 0 && index < reasonCodes.length) {
        toggle(reasonsPanel, false);
        decide("reject", reasonCodes[index]);
      } else if (key === "Escape") {
        toggle(reasonsPanel, false);
      }
      event.preventDefault();
      return;
    }
    switch (key) {
      case "a": decide("approve"); break;
      case "r": if (item() && item().dataset.listingId) { toggle(reasonsPanel, true); } break;
      case "s": case "j": skip(); break;
      case "u": undo(); break;
      case "n": note.focus(); break;
      case "z": document.body.classList.toggle("review-zoomed"); break;
      case "?": toggle(helpPanel); break;
      case "Escape": toggle(helpPanel, false); break;
      default: stats.keystrokes -= 1; return;
    }
    event.preventDefault();
  });

  container.addEventListener("click", (event) => {
    if (event.target.classList.contains("review-photo")) {
      document.body.classList.toggle("review-zoomed");
    }
  });
}());
