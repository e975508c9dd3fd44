/*
 * txzserver live notifications for Plone Classic UI.
 *
 * Opens a WebSocket to <portal path>/ws on the page's own host (wss:// when the page is https,
 * so it works behind a TLS front), and shows a small toast for every content event the server
 * delivers to this user. Reconnects with exponential backoff and jitter (1 s doubling up to
 * 30 s, reset once a connection succeeded). Plain DOM, no framework: it must not fight with
 * whatever else the page loads.
 *
 * Links are built from the event's path on the page's own origin (eventLink): never from the
 * event's url, which the page cannot vouch for (a "javascript:" url would run in this origin on
 * click, another host's would send the user there). The server's welcome names the site the
 * connection belongs to; an event path below it maps onto this page's portal URL, so the link
 * is location.origin + the event's path (under virtual hosting: + the site's public path).
 *
 * A "gap" message (the server lost some events on its bus) shows one "Some updates were
 * missed" toast; on a folder listing, where the page itself is what went stale, the toast
 * offers a Reload button.
 *
 * DOM contract (tests rely on it): container #txzserver-toasts, each toast .txzserver-toast,
 * the gap toast .txzserver-toast-gap with its button .txzserver-toast-reload on listings.
 * window.txzserverToasts exposes {show, showGap, handle, connect, socketUrl, eventLink, connected, site} for
 * debugging and tests (handle takes a parsed server message); connected is true between the
 * server's welcome message and the socket's close; site is the welcome's site path.
 */
(function () {
  "use strict";

  if (window.txzserverToasts) {
    return; // loaded twice (bundle + a manual include): one connection is enough
  }

  var CONTENT_TYPES = {
    created: "Created",
    modified: "Modified",
    removed: "Removed",
    transition: "Workflow",
    notification: "Notification"
  };
  var LOG_TYPES = { welcome: true, status: true, error: true };
  var GAP_TEXT = "Some updates were missed";
  // Body classes of Classic UI folder listings (folder default views, collections, contents).
  var LISTING = /(^|\s)template-(listing_view|summary_view|tabular_view|album_view|full_view|event_listing|folder_contents)(\s|$)/;
  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var TOAST_MS = 10000;
  var MAX_TOASTS = 5;
  var CSS = [
    "#txzserver-toasts{position:fixed;right:1rem;bottom:1rem;z-index:10000;display:flex;",
    "flex-direction:column;gap:.5rem;max-width:24rem;font-size:.9rem;pointer-events:none}",
    ".txzserver-toast{pointer-events:auto;background:#fff;color:#212529;border:1px solid #ccc;",
    "border-left:4px solid #007bb1;border-radius:4px;padding:.6rem 2rem .6rem .8rem;",
    "box-shadow:0 2px 8px rgba(0,0,0,.15);position:relative;word-wrap:break-word}",
    ".txzserver-toast-notification{border-left-color:#e5a000}",
    ".txzserver-toast-removed{border-left-color:#b00}",
    ".txzserver-toast-gap{border-left-color:#6c757d}",
    ".txzserver-toast-reload{margin-top:.4rem;border:1px solid #007bb1;border-radius:3px;",
    "background:#fff;color:#007bb1;padding:.1rem .6rem;cursor:pointer}",
    ".txzserver-toast-kind{display:block;font-size:.75rem;text-transform:uppercase;color:#666}",
    ".txzserver-toast-title{font-weight:bold}",
    ".txzserver-toast-close{position:absolute;top:.2rem;right:.4rem;border:0;background:none;",
    "font-size:1.2rem;line-height:1;cursor:pointer;color:#666}"
  ].join("");

  var attempt = 0;
  var socket = null;
  var timer = null;

  function portalUrl() {
    var fromBody = document.body && document.body.dataset.portalUrl;
    return new URL(fromBody || "/", window.location.href);
  }

  function socketUrl() {
    var portal = portalUrl();
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var path = portal.pathname.replace(/\/+$/, "");
    return scheme + "//" + window.location.host + path + "/ws";
  }

  // The link to an event's object: this page's origin, the portal's path on it, the event's
  // path below the site; "" when the path is not in the site or the result leaves the origin.
  function eventLink(event) {
    var site = window.txzserverToasts.site;
    var path = event && event.path;
    if (typeof site !== "string" || typeof path !== "string" || site.charAt(0) !== "/") {
      return "";
    }
    site = site.replace(/\/+$/, "");
    if (path !== site && path.indexOf(site + "/") !== 0) {
      return "";
    }
    var base = portalUrl().pathname.replace(/\/+$/, "");
    var link;
    try {
      link = new URL(window.location.origin + base + path.slice(site.length));
    } catch (err) {
      return "";
    }
    if ((link.protocol !== "http:" && link.protocol !== "https:") ||
        link.origin !== window.location.origin) {
      return "";
    }
    return link.href;
  }

  function container() {
    var box = document.getElementById("txzserver-toasts");
    if (box) {
      return box;
    }
    if (!document.getElementById("txzserver-toasts-style")) {
      var style = document.createElement("style");
      style.id = "txzserver-toasts-style";
      style.textContent = CSS;
      document.head.appendChild(style);
    }
    box = document.createElement("div");
    box.id = "txzserver-toasts";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("aria-relevant", "additions");
    document.body.appendChild(box);
    return box;
  }

  function dismiss(toast) {
    if (toast.parentNode) {
      toast.parentNode.removeChild(toast);
    }
  }

  function newToast(type) {
    var toast = document.createElement("div");
    toast.className = "txzserver-toast txzserver-toast-" + type;
    toast.dataset.type = type;
    return toast;
  }

  function place(toast) {
    var box = container();
    var close = document.createElement("button");
    close.type = "button";
    close.className = "txzserver-toast-close";
    close.setAttribute("aria-label", "Dismiss notification");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { dismiss(toast); });
    toast.appendChild(close);

    box.appendChild(toast);
    while (box.children.length > MAX_TOASTS) {
      dismiss(box.firstChild);
    }
    var hide = setTimeout(function () { dismiss(toast); }, TOAST_MS);
    toast.addEventListener("mouseenter", function () { clearTimeout(hide); });
    toast.addEventListener("mouseleave", function () {
      hide = setTimeout(function () { dismiss(toast); }, TOAST_MS / 2);
    });
    return toast;
  }

  function isListing() {
    return LISTING.test((document.body && document.body.className) || "");
  }

  function showGap() {
    // One gap toast at a time: several instances' gaps after a broker restart say one thing.
    var old = document.querySelector("#txzserver-toasts .txzserver-toast-gap");
    if (old) {
      dismiss(old);
    }
    var toast = newToast("gap");
    var text = document.createElement("span");
    text.className = "txzserver-toast-title";
    text.textContent = GAP_TEXT;
    toast.appendChild(text);
    if (isListing()) {
      var reload = document.createElement("button");
      reload.type = "button";
      reload.className = "txzserver-toast-reload";
      reload.textContent = "Reload";
      reload.addEventListener("click", function () { window.location.reload(); });
      var line = document.createElement("div");
      line.appendChild(reload);
      toast.appendChild(line);
    }
    return place(toast);
  }

  function show(event) {
    var toast = newToast(event.type);
    if (event.uid) {
      toast.dataset.uid = event.uid;
    }

    var kind = document.createElement("span");
    kind.className = "txzserver-toast-kind";
    kind.textContent = CONTENT_TYPES[event.type] +
      (event.type === "transition" && event.review_state ? " \u2192 " + event.review_state : "");
    toast.appendChild(kind);

    var link = event.type !== "removed" ? eventLink(event) : "";
    var title = document.createElement(link ? "a" : "span");
    title.className = "txzserver-toast-title";
    title.textContent = event.title || event.path;
    if (link) {
      title.href = link;
    }
    toast.appendChild(title);

    if (event.message) {
      var message = document.createElement("div");
      message.className = "txzserver-toast-message";
      message.textContent = event.message;
      toast.appendChild(message);
    }
    if (event.actor) {
      var actor = document.createElement("div");
      actor.className = "txzserver-toast-actor";
      actor.textContent = "by " + event.actor;
      toast.appendChild(actor);
    }
    return place(toast);
  }

  function handle(event) {
    if (!event || typeof event.type !== "string") {
      return;
    }
    if (event.type === "welcome") {
      window.txzserverToasts.site = typeof event.site === "string" ? event.site : null;
      window.txzserverToasts.connected = true;  // the server now delivers events to us
    }
    if (CONTENT_TYPES.hasOwnProperty(event.type)) {
      show(event);
    } else if (event.type === "gap") {
      console.log("txzserver: missed", event.missed, "update(s) from", event.instance);
      showGap();
    } else if (LOG_TYPES[event.type]) {
      console.log("txzserver:", event.type, event);
    }
  }

  function onMessage(raw) {
    var event;
    try {
      event = JSON.parse(raw.data);
    } catch (err) {
      console.warn("txzserver: ignoring a message that is not JSON", err);
      return;
    }
    handle(event);
  }

  function nextDelay() {
    // Exponential backoff with "equal jitter": half fixed, half random, so a restarted server
    // is not hit by every browser in the same second.
    var base = Math.min(MAX_DELAY, MIN_DELAY * Math.pow(2, attempt));
    attempt += 1;
    return base / 2 + Math.random() * (base / 2);
  }

  function scheduleReconnect() {
    if (timer !== null) {
      return;
    }
    var delay = nextDelay();
    timer = setTimeout(function () {
      timer = null;
      connect();
    }, delay);
  }

  function connect() {
    if (socket && (socket.readyState === WebSocket.OPEN ||
                   socket.readyState === WebSocket.CONNECTING)) {
      return socket;
    }
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      console.warn("txzserver: cannot open WebSocket", err);
      scheduleReconnect();
      return null;
    }
    socket = ws;
    ws.addEventListener("open", function () {
      attempt = 0;
    });
    ws.addEventListener("message", onMessage);
    // Every close reconnects, with a new handshake (its cookies authenticated anew): code 4001
    // is the server's max-connection-age, 1001 its shutdown.
    ws.addEventListener("close", function () {
      window.txzserverToasts.connected = false;
      if (socket === ws) {
        socket = null;
      }
      scheduleReconnect();
    });
    return ws;
  }

  window.txzserverToasts = { show: show, showGap: showGap, handle: handle, connect: connect,
                             socketUrl: socketUrl, eventLink: eventLink, connected: false,
                             site: null };

  if (!("WebSocket" in window)) {
    return;
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
