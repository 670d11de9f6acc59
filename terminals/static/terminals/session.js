// The terminal page: xterm.js speaking the session's WebSocket protocol.
//
// Server → client: binary frames are terminal output; text frames are JSON
// {"type": "status" | "expiry" | "stats" | "error", ...}. Client → server:
// keystrokes as binary frames, and JSON {"type": "resize" | "pause" |
// "resume" | "ack", ...}.
//
// Live stats: {"type": "stats", "watch": true | false} asks the server to
// start or stop sending {"type": "stats", ...} (the fields of GET
// /sessions/{id}/stats) every 2 s. The page watches only while its stats bar
// shows and its tab is visible, so nobody's instance is measured for a
// folded panel or a tab in the background.
//
// Ports: {"type": "ports", "watch": true | false} likewise asks for
// {"type": "ports", "ports": [8080, ...]}, the ports something in the
// instance listens on, sent when they change; each is a badge that opens
// /p/{id}/ports/{port} (the port, through the platform) in a new tab.
//
// A guided lab's steps show beside the terminal (steps.js), which calls the
// API and types commands in through window.playgroundSession.
(() => {
  "use strict";

  // Flow control: ask the server to pause when xterm falls this far behind,
  // and to resume once it has caught up; acknowledge output as it is processed.
  const HIGH_WATER = 512 * 1024;
  const LOW_WATER = 64 * 1024;
  const ACK_EVERY = 64 * 1024;
  const RECONNECT_FIRST_DELAY = 500;
  const RECONNECT_MAX_DELAY = 5000;
  const FONT_SIZE_KEY = "playground.terminal.fontSize";
  const FONT_SIZE_DEFAULT = 14;
  const FONT_SIZE_MIN = 9;
  const FONT_SIZE_MAX = 32;
  const STATS_SHOWN_KEY = "playground.terminal.statsShown";
  // Of a limit: a figure past these shows amber, then red.
  const STATS_WARN = 0.8;
  const STATS_DANGER = 0.95;

  const $ = (id) => document.getElementById(id);
  const ui = {
    node: $("node"),
    nodeName: $("node-name"),
    nodeIp: $("node-ip"),
    status: $("status"),
    countdown: $("countdown"),
    fontValue: $("font-size-value"),
    fontSmaller: $("font-smaller"),
    fontLarger: $("font-larger"),
    copy: $("copy"),
    terminalArea: $("terminal-area"),
    statsToggle: $("stats-toggle"),
    portBadges: $("port-badges"),
    openPort: $("open-port"),
    openPortNumber: $("open-port-number"),
    stats: $("stats"),
    statCpu: $("stat-cpu"),
    statMemory: $("stat-memory"),
    statMemoryItem: $("stat-memory-item"),
    statPids: $("stat-pids"),
    statPidsItem: $("stat-pids-item"),
    statNetwork: $("stat-network"),
    statDisk: $("stat-disk"),
    statDiskItem: $("stat-disk-item"),
    // The owner's controls; a share link's holder has none of them.
    close: $("close-session"),
    extend: $("extend-session"),
    share: $("share-session"),
    shareDialog: $("share-dialog"),
    shareForm: $("share-form"),
    shareMode: $("share-mode"),
    shareExpires: $("share-expires"),
    shareMade: $("share-made"),
    shareUrl: $("share-url"),
    shareCopy: $("share-copy"),
    shareError: $("share-error"),
    shareList: $("share-list"),
    shareClose: $("share-close"),
    dropZone: $("drop-zone"),
    transfer: $("transfer"),
    transferText: $("transfer-text"),
    transferProgress: $("transfer-progress"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    retryNow: $("retry-now"),
    overlay: $("overlay"),
    overlayCard: $("overlay").querySelector(".card"),
    overlayTitle: $("overlay-title"),
    overlayMessage: $("overlay-message"),
    overlayDismiss: $("overlay-dismiss"),
  };
  const apiUrl = $("session-script").dataset.apiUrl;
  // What to say when the session or its terminal ends, from the server's own
  // table: {endings: {key: {title, message}}, final_closes: {code: key}}.
  const { endings: ENDINGS, final_closes: FINAL_CLOSES } = JSON.parse($("endings").textContent);

  const state = {
    session: JSON.parse($("session-data").textContent),
    conn: null, // {ws, pending, processed, acked, paused, watching} for the current socket
    statsShown: loadStatsShown(),
    everOpened: false,
    retryTimer: null,
    retryDelay: RECONNECT_FIRST_DELAY,
    finished: false,
  };

  const encoder = new TextEncoder();
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: cssVariable("--mono"),
    fontSize: loadFontSize(),
    lineHeight: 1.1,
    scrollback: 5000,
    theme: terminalTheme(),
  });
  const fitAddon = new FitAddon.FitAddon();
  term.loadAddon(fitAddon);
  term.loadAddon(new WebLinksAddon.WebLinksAddon());

  // The terminal's colours are the stylesheet's (--term-* in app.css).
  function cssVariable(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function terminalTheme() {
    const names = [
      "background", "foreground", "cursor", "cursorAccent", "selectionBackground",
      "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
      "brightBlack", "brightRed", "brightGreen", "brightYellow",
      "brightBlue", "brightMagenta", "brightCyan", "brightWhite",
    ];
    const kebab = (name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    return Object.fromEntries(names.map((name) => [name, cssVariable(`--term-${kebab(name)}`)]));
  }

  // One way to call the session's API: JSON both ways, the CSRF token that
  // cookie-authenticated writes need, and the server's own error message.
  async function api(method, path, body) {
    const headers = { Accept: "application/json", ...csrfHeaders() };
    const options = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(apiUrl + path, options);
    } catch {
      throw new ApiError(0, "The server could not be reached.");
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.message) || `The server answered ${response.status}.`);
    }
    return data;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function csrfHeaders() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? { "X-CSRFToken": decodeURIComponent(match[1]) } : {};
  }

  function endWith(key, message, tone) {
    const ending = ENDINGS[key];
    finish(ending.title, message || ending.message, tone);
  }

  // --- Top bar ---------------------------------------------------------------

  function nodeName() {
    return (state.session.instance && state.session.instance.name) || "node1";
  }

  function setStatus(text, tone) {
    ui.status.textContent = text;
    ui.status.hidden = !text;
    ui.status.dataset.tone = tone || "";
  }

  function statusText(instanceStatus) {
    switch (instanceStatus) {
      case "pending":
        return `Waiting for ${nodeName()}…`;
      case "provisioning":
        return `Starting ${nodeName()}…`;
      case "setting_up":
        return "Setting up the lab…";
      case "terminating":
      case "terminated":
        return `${nodeName()} has been removed.`;
      default:
        return "";
    }
  }

  function showInstance(instance) {
    if (!instance) return;
    state.session.instance = { ...state.session.instance, ...instance };
    const merged = state.session.instance;
    ui.nodeName.textContent = merged.name || "node1";
    ui.nodeIp.textContent = merged.ip_address || "no address yet";
    ui.node.title = merged.image ? `Image: ${merged.image}` : "";
    if (merged.status) ui.node.dataset.state = merged.status;
  }

  // Applies what GET /sessions/{id} answers (and the page was rendered with).
  function showSession(session) {
    state.session = { ...state.session, ...session };
    showInstance(session.instance);
    renderCountdown();
    const instance = session.instance;
    if (session.status === "closed" || session.status === "expired") {
      endWith(session.status);
    } else if (instance && instance.status === "failed") {
      endWith("failed", instance.error, "error");
    }
  }

  async function refreshSession() {
    try {
      showSession(await api("GET", ""));
    } catch (error) {
      // Unreachable: the reconnect banner already says so.
      if (error.status === 404) endWith("not_found", null, "error");
    }
  }

  function renderCountdown() {
    const expiresAt = Date.parse(state.session.expires_at);
    ui.countdown.hidden = state.finished || Number.isNaN(expiresAt);
    if (ui.countdown.hidden) return;
    const seconds = Math.ceil((expiresAt - Date.now()) / 1000);
    ui.countdown.title = `Expires at ${new Date(expiresAt).toLocaleTimeString()}`;
    if (seconds <= 0) {
      ui.countdown.textContent = "expired";
      ui.countdown.dataset.tone = "danger";
      return;
    }
    const pad = (n) => String(n).padStart(2, "0");
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    ui.countdown.textContent = `${h ? `${h}:${pad(m)}` : m}:${pad(s)} left`;
    ui.countdown.dataset.tone = seconds < 60 ? "danger" : seconds < 300 ? "warn" : "";
  }

  function showBanner(text) {
    ui.bannerText.textContent = text;
    ui.banner.hidden = false;
  }

  // The session is over: no more input, no more reconnecting.
  function finish(title, message, tone) {
    if (state.finished) return;
    state.finished = true;
    clearTimeout(state.retryTimer);
    ui.banner.hidden = true;
    const conn = state.conn;
    state.conn = null;
    if (conn && conn.ws.readyState <= WebSocket.OPEN) conn.ws.close(1000);
    term.options.disableStdin = true;
    term.options.cursorBlink = false;
    for (const control of [ui.close, ui.extend, ui.share]) if (control) control.disabled = true;
    if (ui.node.dataset.state !== "failed") ui.node.dataset.state = "terminated";
    setStatus(title, tone);
    renderCountdown();
    ui.overlayTitle.textContent = title;
    ui.overlayMessage.textContent = message;
    ui.overlayCard.dataset.tone = tone || "";
    ui.overlay.hidden = false;
    ui.stats.dataset.stale = "";
  }

  // --- Terminal size and font ------------------------------------------------

  function loadFontSize() {
    try {
      const saved = Number.parseInt(localStorage.getItem(FONT_SIZE_KEY), 10);
      if (saved >= FONT_SIZE_MIN && saved <= FONT_SIZE_MAX) return saved;
    } catch {
      // Storage may be disabled; the default will do.
    }
    return FONT_SIZE_DEFAULT;
  }

  function setFontSize(size) {
    const clamped = Math.min(FONT_SIZE_MAX, Math.max(FONT_SIZE_MIN, size));
    term.options.fontSize = clamped;
    ui.fontValue.textContent = String(clamped);
    ui.fontSmaller.disabled = clamped <= FONT_SIZE_MIN;
    ui.fontLarger.disabled = clamped >= FONT_SIZE_MAX;
    try {
      localStorage.setItem(FONT_SIZE_KEY, String(clamped));
    } catch {
      // Not persisted; the size still applies to this page.
    }
    scheduleFit();
  }

  function fit() {
    fitAddon.fit();
    sendJson(state.conn, { type: "resize", cols: term.cols, rows: term.rows });
  }

  // Resizing a window fires many events; fit once per frame.
  let fitScheduled = false;
  function scheduleFit() {
    if (fitScheduled) return;
    fitScheduled = true;
    requestAnimationFrame(() => {
      fitScheduled = false;
      fit();
    });
  }

  // --- Live stats ------------------------------------------------------------

  function loadStatsShown() {
    try {
      return localStorage.getItem(STATS_SHOWN_KEY) !== "false";
    } catch {
      return true;
    }
  }

  function setStatsShown(shown) {
    state.statsShown = shown;
    ui.terminalArea.classList.toggle("with-stats", shown);
    ui.statsToggle.setAttribute("aria-pressed", String(shown));
    try {
      localStorage.setItem(STATS_SHOWN_KEY, String(shown));
    } catch {
      // Not persisted; the choice still applies to this page.
    }
    updateWatch();
  }

  // Tell the server whether this socket wants stats and ports now, when that changed.
  function updateWatch() {
    const conn = state.conn;
    if (!conn || conn.ws.readyState !== WebSocket.OPEN) return;
    const visible = document.visibilityState === "visible";
    const wanted = state.statsShown && visible;
    if (conn.watching !== wanted) {
      conn.watching = wanted;
      sendJson(conn, { type: "stats", watch: wanted });
    }
    if (conn.watchingPorts !== visible) {
      conn.watchingPorts = visible;
      sendJson(conn, { type: "ports", watch: visible });
    }
  }

  // --- Ports -----------------------------------------------------------------

  function portUrl(port) {
    return `/p/${encodeURIComponent(state.session.session_id)}/ports/${port}`;
  }

  function showPorts(ports) {
    const badges = ports.map((port) => {
      const badge = document.createElement("a");
      badge.className = "port-badge";
      badge.href = portUrl(port);
      badge.target = "_blank";
      badge.rel = "noopener";
      badge.textContent = String(port);
      badge.title = `Open port ${port} in a new tab`;
      return badge;
    });
    ui.portBadges.replaceChildren(...badges);
  }

  function openPort(event) {
    event.preventDefault();
    const port = Number(ui.openPortNumber.value);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return;
    window.open(portUrl(port), "_blank", "noopener");
    ui.openPortNumber.value = "";
    term.focus();
  }

  function formatBytes(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${unit === 0 || value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
  }

  // A limit of 0 (or Docker's "max", a huge number) is no limit.
  function hasLimit(limit) {
    return limit > 0 && limit < Number.MAX_SAFE_INTEGER;
  }

  function showOfLimit(item, valueElement, used, limit, format) {
    valueElement.textContent = hasLimit(limit) ? `${format(used)} / ${format(limit)}` : format(used);
    const ratio = hasLimit(limit) ? used / limit : 0;
    item.dataset.tone = ratio >= STATS_DANGER ? "danger" : ratio >= STATS_WARN ? "warn" : "";
  }

  function showStats(stats) {
    ui.statCpu.textContent = `${stats.cpu_percent.toFixed(1)} %`;
    showOfLimit(ui.statMemoryItem, ui.statMemory, stats.memory_bytes, stats.memory_limit_bytes, formatBytes);
    showOfLimit(ui.statPidsItem, ui.statPids, stats.pids, stats.pids_limit, String);
    ui.statNetwork.textContent = `↓ ${formatBytes(stats.network_rx_bytes)} ↑ ${formatBytes(stats.network_tx_bytes)}`;
    ui.statDiskItem.hidden = stats.storage_used_bytes == null;
    if (stats.storage_used_bytes != null) {
      showOfLimit(ui.statDiskItem, ui.statDisk, stats.storage_used_bytes, stats.storage_size_bytes, formatBytes);
    }
    ui.stats.title = `Measured at ${new Date().toLocaleTimeString()}`;
    delete ui.stats.dataset.stale;
  }

  // --- Clipboard -------------------------------------------------------------

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch {
        // Fall back to the older way below.
      }
    }
    // Plain http on a host other than localhost has no Clipboard API;
    // execCommand("copy") still works from a click or key press.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.cssText = "position:fixed;top:0;left:0;opacity:0";
    document.body.append(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    area.remove();
    return copied;
  }

  async function copySelection() {
    if (!term.hasSelection()) return;
    const copied = await copyText(term.getSelection());
    ui.copy.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => {
      ui.copy.textContent = "Copy";
    }, 1200);
    term.focus();
  }

  // Ctrl+C and Ctrl+V belong to the shell; Ctrl+Shift+C copies, and
  // Ctrl+Shift+V is left to the browser, whose paste xterm.js then sends.
  function onKey(event) {
    if (!event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) return true;
    if (event.code === "KeyC") {
      if (event.type === "keydown") copySelection();
      event.preventDefault();
      return false;
    }
    return event.code !== "KeyV";
  }

  // --- The socket ------------------------------------------------------------

  function socketUrl() {
    const url = new URL(state.session.ws_url, window.location.href);
    // Behind a TLS proxy the server may not know the page is https.
    if (window.location.protocol === "https:") url.protocol = "wss:";
    return url.href;
  }

  function sendJson(conn, message) {
    if (conn && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(message));
  }

  function sendBytes(bytes) {
    const conn = state.conn;
    if (conn && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(bytes);
  }

  // Text typed in as if keyed: a line break is the Enter key (a carriage
  // return, as xterm.js sends it). False when the terminal takes no input now.
  function typeText(text) {
    const conn = state.conn;
    if (state.finished || state.session.access === "read-only") return false;
    if (!conn || conn.ws.readyState !== WebSocket.OPEN) return false;
    sendBytes(encoder.encode(text.replace(/\r?\n/g, "\r")));
    term.focus();
    return true;
  }

  // Counters belong to one socket: callbacks for output of an old socket
  // never send to its successor.
  function writeOutput(conn, bytes) {
    const size = bytes.length;
    conn.pending += size;
    if (!conn.paused && conn.pending > HIGH_WATER) {
      conn.paused = true;
      sendJson(conn, { type: "pause" });
    }
    term.write(bytes, () => {
      conn.pending -= size;
      conn.processed += size;
      if (conn.paused && conn.pending < LOW_WATER) {
        conn.paused = false;
        sendJson(conn, { type: "resume" });
      }
      if (conn.processed - conn.acked >= ACK_EVERY) {
        conn.acked = conn.processed;
        sendJson(conn, { type: "ack", bytes: conn.processed });
      }
    });
  }

  // Statuses after which the session has no terminal any more.
  const FINAL_STATUSES = ["failed", "closed", "expired"];

  function onStatus(message) {
    showInstance(message.instance);
    if (FINAL_STATUSES.includes(message.status)) {
      endWith(message.status, message.message, message.status === "failed" ? "error" : "");
      return;
    }
    if (message.status === "running") {
      ui.node.dataset.state = "running";
      setStatus("");
      term.focus();
      return;
    }
    if (message.status) ui.node.dataset.state = message.status;
    setStatus(message.message || statusText(message.status) || message.status);
  }

  function onControl(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.warn("Unreadable message from the terminal server:", text);
      return;
    }
    if (message.type === "status") onStatus(message);
    else if (message.type === "expiry") {
      // The session was extended, here or elsewhere.
      state.session.expires_at = message.expires_at;
      renderCountdown();
    }
    else if (message.type === "stats") showStats(message);
    else if (message.type === "ports") showPorts(message.ports);
    else if (message.type === "error") console.warn("Terminal server:", message.message);
  }

  function onOpen() {
    if (state.everOpened) {
      // The server replays recent output first. Reset through the write queue,
      // so output of the old socket still waiting there cannot land after it.
      term.write(new Uint8Array(0), () => term.reset());
    }
    state.everOpened = true;
    ui.banner.hidden = true;
    const instance = state.session.instance;
    setStatus(instance && instance.status !== "running" ? statusText(instance.status) : "");
    fit();
    updateWatch();
  }

  function onClose(conn, event) {
    if (state.conn !== conn) return; // replaced or finished on purpose
    state.conn = null;
    ui.stats.dataset.stale = "";
    const ending = FINAL_CLOSES[event.code];
    if (ending) {
      endWith(ending, event.reason, "error");
      return;
    }
    scheduleReconnect();
  }

  function connect() {
    state.retryTimer = null;
    if (state.finished) return;
    const previous = state.conn;
    state.conn = null;
    if (previous) previous.ws.close(); // "Retry now" during an attempt
    const ws = new WebSocket(socketUrl());
    ws.binaryType = "arraybuffer";
    // A new socket watches nothing until it says so (updateWatch, once open).
    const conn = { ws, pending: 0, processed: 0, acked: 0, paused: false, watching: false };
    state.conn = conn;
    ws.addEventListener("open", onOpen);
    ws.addEventListener("message", (event) => {
      // A socket that delivers is healthy; one that is accepted and dropped
      // at once keeps backing off instead of hammering the server.
      state.retryDelay = RECONNECT_FIRST_DELAY;
      if (typeof event.data === "string") onControl(event.data);
      else writeOutput(conn, new Uint8Array(event.data));
    });
    ws.addEventListener("close", (event) => onClose(conn, event));
  }

  function scheduleReconnect() {
    const delay = state.retryDelay;
    state.retryDelay = Math.min(delay * 2, RECONNECT_MAX_DELAY);
    showBanner(state.everOpened ? "Connection lost. Reconnecting…" : "The terminal is not answering yet. Retrying…");
    state.retryTimer = setTimeout(reconnect, delay);
  }

  function reconnect() {
    clearTimeout(state.retryTimer);
    connect();
    // The session may have been closed meanwhile; then there is nothing to reconnect to.
    refreshSession();
  }

  // --- Closing the session ---------------------------------------------------

  async function closeSession() {
    const question = `Close this session? ${nodeName()} and everything on it will be removed.`;
    if (!window.confirm(question)) return;
    ui.close.disabled = true;
    try {
      await api("DELETE", "");
      endWith("closed", `You closed this session. ${nodeName()} and everything on it are being removed.`);
    } catch (error) {
      ui.close.disabled = false;
      setStatus(`Could not close the session: ${error.message}`, "error");
    }
  }

  async function extendSession() {
    ui.extend.disabled = true;
    try {
      showSession(await api("POST", "/extend", {}));
      setStatus("");
    } catch (error) {
      setStatus(`Could not extend the session: ${error.message}`, "error");
    } finally {
      ui.extend.disabled = state.finished;
      term.focus();
    }
  }

  // --- Sharing (the owner's) --------------------------------------------------

  function openShareDialog() {
    ui.shareMade.hidden = true;
    ui.shareError.hidden = true;
    ui.shareDialog.hidden = false;
    listShares();
  }

  function showShareError(error) {
    ui.shareError.textContent = error.message;
    ui.shareError.hidden = false;
  }

  async function makeShare(event) {
    event.preventDefault();
    const body = { mode: ui.shareMode.value };
    if (ui.shareExpires.value) body.expires_in = Number(ui.shareExpires.value);
    try {
      const share = await api("POST", "/shares", body);
      ui.shareUrl.value = share.url;
      ui.shareMade.hidden = false;
      ui.shareError.hidden = true;
      ui.shareUrl.select();
      listShares();
    } catch (error) {
      showShareError(error);
    }
  }

  async function listShares() {
    let shares;
    try {
      shares = await api("GET", "/shares");
    } catch (error) {
      showShareError(error);
      return;
    }
    ui.shareList.replaceChildren(
      ...shares
        .filter((share) => share.active)
        .map((share) => {
          const item = document.createElement("li");
          const label = document.createElement("span");
          label.textContent = `${share.mode} link, until ${new Date(share.expires_at).toLocaleTimeString()}`;
          const revoke = document.createElement("button");
          revoke.type = "button";
          revoke.className = "btn btn-danger";
          revoke.textContent = "Revoke";
          revoke.addEventListener("click", () => revokeShare(share.id));
          item.append(label, revoke);
          return item;
        }),
    );
  }

  async function revokeShare(id) {
    try {
      await api("DELETE", `/shares/${encodeURIComponent(id)}`);
      listShares();
    } catch (error) {
      showShareError(error);
    }
  }

  // --- Files dropped on the terminal -----------------------------------------
  // They go to the learner's home (POST {api}/files, multipart); the server
  // checks the size and the path, and its message is shown as it is.

  const TRANSFER_SHOWN_FOR = 4000;
  let transferTimer = null;

  function showTransfer(text, tone, percent) {
    clearTimeout(transferTimer);
    ui.transfer.hidden = false;
    ui.transfer.dataset.tone = tone || "";
    ui.transferText.textContent = text;
    ui.transferProgress.hidden = percent === undefined;
    if (percent !== undefined) ui.transferProgress.value = percent;
    if (tone) transferTimer = setTimeout(() => (ui.transfer.hidden = true), TRANSFER_SHOWN_FOR);
  }

  function carriesFiles(event) {
    return Array.from(event.dataTransfer ? event.dataTransfer.types : []).includes("Files");
  }

  function onDragOver(event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    ui.dropZone.hidden = false;
  }

  function onDrop(event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    ui.dropZone.hidden = true;
    const files = Array.from(event.dataTransfer.files);
    if (files.length) uploadFiles(files);
  }

  // XMLHttpRequest rather than fetch: only it reports the upload's progress.
  function uploadFiles(files) {
    const form = new FormData();
    files.forEach((file) => form.append("files", file, file.name));
    const what = files.length === 1 ? files[0].name : `${files.length} files`;
    const request = new XMLHttpRequest();
    request.open("POST", `${apiUrl}/files`);
    request.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(csrfHeaders())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) showTransfer(`Uploading ${what}…`, "", (100 * event.loaded) / event.total);
    });
    request.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(request.responseText);
      } catch {
        // not JSON: said below by its status
      }
      if (request.status === 201 && data) {
        const where = data.files.length === 1 ? data.files[0].path : `${data.files.length} files in your home`;
        showTransfer(`Uploaded ${where}`, "ok");
      } else {
        showTransfer((data && data.message) || `The server answered ${request.status}.`, "error");
      }
    });
    request.addEventListener("error", () => showTransfer("The server could not be reached.", "error"));
    showTransfer(`Uploading ${what}…`, "", 0);
    request.send(form);
  }

  // --- Wiring ----------------------------------------------------------------

  function start() {
    term.open($("terminal"));
    term.attachCustomKeyEventHandler(onKey);
    term.onData((data) => sendBytes(encoder.encode(data)));
    term.onBinary((data) => sendBytes(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
    term.onSelectionChange(() => {
      ui.copy.disabled = !term.hasSelection();
    });
    setFontSize(term.options.fontSize);
    setStatsShown(state.statsShown);

    new ResizeObserver(scheduleFit).observe($("terminal"));
    if (document.fonts) document.fonts.ready.then(scheduleFit);

    // Give the keyboard back to the shell after a click in the top bar.
    ui.fontSmaller.addEventListener("click", () => {
      setFontSize(term.options.fontSize - 1);
      term.focus();
    });
    ui.fontLarger.addEventListener("click", () => {
      setFontSize(term.options.fontSize + 1);
      term.focus();
    });
    ui.copy.addEventListener("click", copySelection);
    ui.statsToggle.addEventListener("click", () => {
      setStatsShown(!state.statsShown);
      term.focus();
    });
    document.addEventListener("visibilitychange", updateWatch);
    ui.openPort.addEventListener("submit", openPort);
    if (ui.close) ui.close.addEventListener("click", closeSession);
    if (ui.extend) ui.extend.addEventListener("click", extendSession);
    if (ui.share) {
      ui.share.addEventListener("click", openShareDialog);
      ui.shareForm.addEventListener("submit", makeShare);
      ui.shareCopy.addEventListener("click", () => copyText(ui.shareUrl.value));
      ui.shareClose.addEventListener("click", () => {
        ui.shareDialog.hidden = true;
        term.focus();
      });
    }
    // A read-only share watches: the server ignores its keys anyway.
    if (state.session.access === "read-only") term.options.disableStdin = true;
    else {
      // Whoever may type may drop files too (the server checks it again).
      const area = $("terminal");
      area.addEventListener("dragover", onDragOver);
      area.addEventListener("dragleave", () => (ui.dropZone.hidden = true));
      area.addEventListener("drop", onDrop);
    }
    ui.retryNow.addEventListener("click", reconnect);
    ui.overlayDismiss.addEventListener("click", () => {
      ui.overlay.hidden = true;
    });
    window.addEventListener("online", () => {
      if (state.retryTimer) reconnect();
    });

    // What the lab's steps beside the terminal (steps.js) use.
    window.playgroundSession = { api, access: state.session.access, typeText };

    const instance = state.session.instance;
    setStatus((instance && statusText(instance.status)) || "Connecting…");
    showSession(state.session);
    setInterval(renderCountdown, 1000);
    term.focus();
    connect();
  }

  start();
})();
