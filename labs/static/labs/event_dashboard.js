// A workshop's dashboard: the seats' table refreshes itself, and Extend all / Close all act on every seat.
(() => {
  "use strict";

  const REFRESH_EVERY = 5000; // milliseconds
  const page = document.getElementById("dashboard");
  const result = document.getElementById("action-result");

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  // The table as the server renders it: the page itself, fetched again, is its one source.
  async function refresh() {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ["seat-rows", "seats-taken"]) {
        const replacement = fresh.getElementById(id);
        if (replacement) document.getElementById(id).replaceWith(replacement);
      }
    } catch {
      // Offline for a moment: the next round tries again.
    }
  }

  function say(text) {
    result.textContent = text;
    result.hidden = false;
  }

  async function act(url, done) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = csrfToken();
    if (token) headers["X-CSRFToken"] = token;
    let body = null;
    try {
      const response = await fetch(url, { method: "POST", headers, credentials: "same-origin", body: "{}" });
      body = await response.json();
      if (!response.ok) {
        say(body && body.message ? body.message : `The server answered ${response.status}.`);
        return;
      }
    } catch {
      say("The playground could not be reached. Please try again.");
      return;
    }
    const left = body.unchanged.map((item) => item.message);
    say(`${done} ${body.changed.length} session(s).` + (left.length ? ` Left as they were: ${[...new Set(left)].join(" ")}` : ""));
    refresh();
  }

  document.getElementById("extend-all").addEventListener("click", () => act(page.dataset.extendUrl, "Extended"));
  document.getElementById("close-all").addEventListener("click", () => {
    if (window.confirm("Close every learner's session now? Their instances are removed.")) {
      act(page.dataset.closeUrl, "Closed");
    }
  });
  window.setInterval(refresh, REFRESH_EVERY);
})();
