// A workshop's join page: Join takes a seat through the API and goes to the learner's terminal.
(() => {
  "use strict";

  const form = document.getElementById("join-form");
  const button = document.getElementById("join");
  const label = button.querySelector(".label");
  const nameInput = document.getElementById("learner-name");
  const errorBox = document.getElementById("join-error");
  const errorMessage = errorBox.querySelector(".alert-message");

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function setBusy(busy) {
    button.disabled = busy;
    button.setAttribute("aria-busy", String(busy));
    label.textContent = busy ? "Joining…" : "Join";
  }

  function showError(message) {
    errorMessage.textContent = message;
    errorBox.hidden = false;
  }

  async function join(event) {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      nameInput.focus();
      return;
    }
    setBusy(true);
    errorBox.hidden = true;
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = csrfToken();
    if (token) headers["X-CSRFToken"] = token;
    let response;
    try {
      response = await fetch(form.dataset.joinUrl, {
        method: "POST",
        headers,
        credentials: "same-origin",
        body: JSON.stringify({ invite: form.dataset.invite, name }),
      });
    } catch {
      setBusy(false);
      showError("The playground could not be reached. Check your connection and try again.");
      return;
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok || !body || !body.session_id) {
      setBusy(false);
      // The API's own words: {"error": reason, "message": text}.
      showError(body && body.message ? body.message : `The server answered ${response.status}. Please try again.`);
      return;
    }
    window.location.assign(form.dataset.sessionPageUrl.replace("__session_id__", encodeURIComponent(body.session_id)));
  }

  form.addEventListener("submit", join);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) setBusy(false);
  });
})();
