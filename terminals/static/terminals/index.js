// The landing page: Start opens a session through the API and goes to its terminal.
(() => {
  "use strict";

  const button = document.getElementById("start");
  const label = button.querySelector(".label");
  const errorBox = document.getElementById("start-error");
  const errorMessage = errorBox.querySelector(".alert-message");

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function setBusy(busy) {
    button.disabled = busy;
    button.setAttribute("aria-busy", String(busy));
    label.textContent = busy ? "Starting…" : "Start";
  }

  function showError(message) {
    errorMessage.textContent = message;
    errorBox.hidden = false;
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  // The API answers errors as {"error": reason, "message": text}.
  function describeFailure(response, body) {
    if (body && body.message) return body.message;
    return `The server answered ${response.status} ${response.statusText}. Please try again in a moment.`;
  }

  async function start() {
    setBusy(true);
    errorBox.hidden = true;
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = csrfToken();
    if (token) headers["X-CSRFToken"] = token;
    let response;
    try {
      response = await fetch(button.dataset.sessionsUrl, {
        method: "POST",
        headers,
        credentials: "same-origin",
        // A template's page (/t/<slug>) starts a session of that template.
        body: JSON.stringify(button.dataset.template ? { template: button.dataset.template } : { playground_id: "default" }),
      });
    } catch {
      setBusy(false);
      showError("The playground could not be reached. Check your connection and try again.");
      return;
    }
    const body = await readJson(response);
    if (!response.ok || !body || !body.session_id) {
      setBusy(false);
      showError(describeFailure(response, body));
      return;
    }
    // Stay busy while the browser loads the terminal page.
    window.location.assign(button.dataset.sessionPageUrl.replace("__session_id__", encodeURIComponent(body.session_id)));
  }

  button.addEventListener("click", start);
  // Coming back with the Back button restores the page from the cache, busy; make it usable again.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) setBusy(false);
  });
})();
