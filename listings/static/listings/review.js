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
  const notePanel = document.getElementById("review-note-panel");
  const status = document.getElementById("review-status");
  const zoom = document.getElementById("review-zoom");
  const zoomPhoto = document.getElementById("review-zoom-photo");
  const csrfToken = app.querySelector("input[name=csrfmiddlewaretoken]").value;
  const reasonChoices = Array.from(reasonsPanel.querySelectorAll("[data-reason-code]")).map((item) => item.dataset);
  // What the screen did, for the curious (and the browser test).
  // ``opened``: the screen holds its first listing (or knows there is none).
  const stats = window.reviewStats = { decisions: 0, skips: 0, undos: 0, keystrokes: 0, fragments: 0, backs: 0, opened: false };
  const PAN_STEP = 80;
  let busy = false;

  function item() { return document.getElementById("review-item"); }

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  async function load(url, options, counted = true) {
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
      if (counted) { stats.fragments += 1; }
      return true;
    } catch (error) {
      say(`Network error: ${error.message}`, true);
      return false;
    } finally {
      busy = false;
    }
  }

  function post(url, fields, counted = true) {
    const body = new URLSearchParams(fields);
    return load(url, { method: "POST", body, headers: { "X-CSRFToken": csrfToken } }, counted);
  }

  async function decide(decision, choice) {
    const current = item();
    if (!current || !current.dataset.listingId) { return; }
    const attached = note.value.trim() !== "";
    const ok = await post(current.dataset.decideUrl, { decision, reason_code: choice ? choice.reasonCode : "", note: note.value });
    if (ok) {
      stats.decisions += 1;
      const what = decision === "approve" ? "approved" : `rejected (${choice.reasonLabel})`;
      say(`#${current.dataset.listingId} ${what}${attached ? ", with your note" : ""}.`);
      note.value = "";
      notePanel.hidden = true;
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

  async function back() {
    const current = item();
    const shown = current && current.dataset.listingId ? current.dataset.listingId : "";
    if (await post(app.dataset.nextUrl, { back: "1", current: shown })) {
      stats.backs += 1;
      say("Back to the listings you skipped.");
    }
  }

  function setZoom(level) {
    // 0: off; 1: the whole photo, screen-sized; 2: doubled, panned by the arrow keys.
    const photo = document.querySelector("#review-item .review-photo");
    if (level > 0 && !photo) { return; }
    zoom.hidden = level === 0;
    zoom.classList.toggle("doubled", level === 2);
    if (level > 0) { zoomPhoto.src = photo.src; }
    zoom.scrollTo(0, 0);
  }

  function zoomLevel() { return zoom.hidden ? 0 : (zoom.classList.contains("doubled") ? 2 : 1); }

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
      if (event.key === "Escape") {
        note.blur();
        // A written note stays in view until the decision it goes with.
        notePanel.hidden = note.value.trim() === "";
        event.preventDefault();
      }
      return;
    }
    if (event.target.closest && event.target.closest("input, textarea, select")) { return; }
    if (busy) { event.preventDefault(); return; }
    const key = event.key;
    stats.keystrokes += 1;
    if (!zoom.hidden) {
      const pans = { ArrowLeft: [-PAN_STEP, 0], ArrowRight: [PAN_STEP, 0], ArrowUp: [0, -PAN_STEP], ArrowDown: [0, PAN_STEP] };
      if (pans[key]) {
        zoom.scrollBy(pans[key][0], pans[key][1]);
        event.preventDefault();
        return;
      }
      if (key === "z" || key === "Escape") {
        setZoom(key === "z" && zoomLevel() === 1 ? 2 : 0);
        event.preventDefault();
        return;
      }
      setZoom(0);  // any other key acts on the listing as usual
    }
    if (!reasonsPanel.hidden) {
      const index = Number.parseInt(key, 10) - 1;
      if (index >= 0 && index < reasonChoices.length) {
        toggle(reasonsPanel, false);
        decide("reject", reasonChoices[index]);
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
      case "b": back(); break;
      case "u": undo(); break;
      case "n": notePanel.hidden = false; note.focus(); break;
      case "z": setZoom(1); break;
      case "?": toggle(helpPanel); break;
      case "Escape": toggle(helpPanel, false); break;
      default: stats.keystrokes -= 1; return;
    }
    event.preventDefault();
  });

  // Claims are POSTs: the screen claims its first listing as it opens.
  if (app.dataset.claimOnOpen) {
    post(app.dataset.nextUrl, {}, false).then(() => { stats.opened = true; });
  } else {
    stats.opened = true;
  }

  container.addEventListener("click", (event) => {
    if (event.target.classList.contains("review-photo")) { setZoom(1); }
  });
  zoom.addEventListener("click", () => setZoom(zoomLevel() === 1 ? 2 : 0));
}());
