// The button that opens a session through the API and goes to its terminal: Start on the
// landing page and on a template's page (/t/<slug>), Join on a workshop's page (/e/<invite>),
// where it is the button of a form with the learner's name.
(() => {
  "use strict";

  const button = document.getElementById("start");
  const form = button.form;
  const label = button.querySelector(".label");
  const idleLabel = label.textContent;
  const errorBox = document.getElementById("start-error");
  const errorMessage = errorBox.querySelector(".alert-message");

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function setBusy(busy) {
    button.disabled = busy;
    button.setAttribute("aria-busy", String(busy));
    label.textContent = busy ? button.dataset.busyLabel || "Starting…" : idleLabel;
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

  // What POST {data-sessions-url} is sent: a seat for the named learner, a session of the
  // template, or a plain one.
  function requestBody() {
    if (button.dataset.invite) return { invite: button.dataset.invite, name: form.elements.name.value.trim() };
    if (button.dataset.template) return { template: button.dataset.template };
    return { playground_id: "default" };
  }

  async function start() {
    const body = requestBody();
    if (body.invite !== undefined && !body.name) {
      form.elements.name.focus();
      return;
    }
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
        body: JSON.stringify(body),
      });
    } catch {
      setBusy(false);
      showError("The playground could not be reached. Check your connection and try again.");
      return;
    }
    const answer = await readJson(response);
    if (!response.ok || !answer || !answer.session_id) {
      setBusy(false);
      showError(describeFailure(response, answer));
      return;
    }
    // Stay busy while the browser loads the terminal page.
    window.location.assign(button.dataset.sessionPageUrl.replace("__session_id__", encodeURIComponent(answer.session_id)));
  }

  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      start();
    });
  } else {
    button.addEventListener("click", start);
  }
  // Coming back with the Back button restores the page from the cache, busy; make it usable again.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) setBusy(false);
  });
})();
