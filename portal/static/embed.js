/*
 * Embedding the Entra ID connection portal in the host product's page (no build step).
 *
 *   <script src="https://PORTAL/static/embed.js"></script>
 *   const portal = EntraPortal.open({
 *     token: () => fetch("/your-backend/connect-session", {method: "POST"})
 *                    .then((r) => r.json()).then((j) => j.token),   // or the token itself
 *     container: document.getElementById("connect"),   // omit for an overlay
 *     onEvent: (event) => console.log(event.type, event),
 *   });
 *
 * The portal opens in an iframe on its own origin. The token never goes into a URL: the frame
 * says it is ready, and only then is the token posted to it, to the portal's exact origin.
 * Events (ready, connected {connection_id}, error {code, message}, close {return_url}) are
 * accepted only from that frame and that origin, and the portal sends them only to the origin
 * of the page that opened it.
 */
(function () {
  "use strict";

  var SOURCE = "entra-portal";
  var EVENTS = { ready: true, connected: true, error: true };
  var script = document.currentScript;
  var PORTAL = new URL(script && script.src ? script.src : "/", window.location.href).origin;

  function style(element, rules) {
    Object.keys(rules).forEach(function (name) { element.style[name] = rules[name]; });
  }

  function open(options) {
    options = options || {};
    var container = options.container || null;
    var overlay = null;
    var frame = document.createElement("iframe");
    var tokenSent = false;
    var closed = false;

    frame.src = PORTAL + "/embed";
    frame.title = options.title || "Connect Microsoft Entra ID";
    frame.setAttribute("allow", "clipboard-write");
    style(frame, { border: "0", width: "100%", height: options.height || "720px" });

    if (!container) {
      overlay = document.createElement("div");
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-modal", "true");
      overlay.setAttribute("aria-label", frame.title);
      style(overlay, {
        position: "fixed", inset: "0", background: "rgba(0,0,0,0.45)", zIndex: "2147483000",
        display: "flex", alignItems: "center", justifyContent: "center"
      });
      container = document.createElement("div");
      style(container, {
        background: "#fff", width: "min(960px, 96vw)", maxHeight: "94vh", overflow: "auto",
        borderRadius: "8px", boxShadow: "0 10px 40px rgba(0,0,0,0.3)"
      });
      overlay.appendChild(container);
      document.body.appendChild(overlay);
    }
    container.appendChild(frame);

    function emit(type, data) {
      var event = { type: type };
      Object.keys(data || {}).forEach(function (key) { event[key] = data[key]; });
      if (typeof options.onEvent === "function") {
        try { return options.onEvent(event); } catch (error) { console.error(error); }
      }
      return undefined;
    }

    function sendToken() {
      var value = typeof options.token === "function" ? options.token() : options.token;
      Promise.resolve(value).then(function (token) {
        if (closed) { return; }
        if (typeof token !== "string" || !token) {
          emit("error", { code: "token_unavailable", message: "No connect session token." });
          return;
        }
        frame.contentWindow.postMessage({ source: SOURCE, type: "session", token: token }, PORTAL);
      }, function (error) {
        emit("error", { code: "token_unavailable", message: String(error) });
      });
    }

    function onMessage(event) {
      if (event.origin !== PORTAL || event.source !== frame.contentWindow) { return; }
      var message = event.data;
      if (!message || message.source !== SOURCE || typeof message.type !== "string") { return; }
      if (message.type === "handshake") {
        if (!tokenSent) { tokenSent = true; sendToken(); }
        return;
      }
      if (message.type === "close") {
        handle.close(message.return_url);
        return;
      }
      if (EVENTS[message.type]) {
        var data = {};
        if (typeof message.connection_id === "string") { data.connection_id = message.connection_id; }
        if (typeof message.code === "string") { data.code = message.code; }
        if (typeof message.message === "string") { data.message = message.message; }
        emit(message.type, data);
      }
    }

    window.addEventListener("message", onMessage);

    var handle = {
      frame: frame,
      close: function (returnUrl) {
        if (closed) { return; }
        closed = true;
        window.removeEventListener("message", onMessage);
        frame.remove();
        if (overlay) { overlay.remove(); }
        var url = typeof returnUrl === "string" ? returnUrl : null;
        var keep = emit("close", url ? { return_url: url } : {});
        // The portal checked the return URL against the session's allowed origins.
        if (url && keep !== false && /^https?:\/\//.test(url)) { window.location.assign(url); }
      }
    };
    return handle;
  }

  window.EntraPortal = { open: open, origin: PORTAL };
})();
