// A share link is /p/<session id>#share=<token>. The fragment never reaches a
// server, so the page trades the token for this browser's shares cookie, then
// loads the session's page again, without the fragment.
(() => {
  "use strict";

  const script = document.getElementById("redeem-script");
  const text = document.getElementById("not-found-text");

  function redeem() {
    const match = window.location.hash.match(/[#&]share=([^&]+)/);
    if (match) redeemToken(decodeURIComponent(match[1]));
  }

  function redeemToken(token) {
    const csrf = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (csrf) headers["X-CSRFToken"] = decodeURIComponent(csrf[1]);
    text.textContent = "Opening the shared terminal…";
    fetch(script.dataset.redeemUrl, {
      method: "POST",
      headers,
      credentials: "same-origin",
      body: JSON.stringify({ token }),
    })
      .then(async (response) => {
        const body = await response.json().catch(() => null);
        if (!response.ok) throw new Error((body && body.message) || `The server answered ${response.status}.`);
        window.location.replace(window.location.pathname);
      })
      .catch((error) => {
        text.textContent = `This share link does not open the session: ${error.message}`;
      });
  }

  // A link opened in a new tab arrives with its fragment; one pasted into
  // this page's address bar only changes the fragment.
  window.addEventListener("hashchange", redeem);
  redeem();
})();
