// The /embed frame: say we are ready, take the connect session token the host page posts
// (from embed.js), trade it for a session with the origin the browser reports for its sender,
// then go to the first page. The token exists only in memory here, never in a URL.
(function () {
  "use strict";

  var SOURCE = "entra-portal";
  var status = document.getElementById("embed-status");
  var csrf = status ? status.getAttribute("data-csrf") : "";
  var handled = false;

  function say(text) { if (status) { status.textContent = text; } }

  window.addEventListener("message", function (event) {
    var message = event.data;
    if (handled || event.source !== window.parent) { return; }
    if (!message || message.source !== SOURCE || message.type !== "session") { return; }
    handled = true;
    say("Signing you in…");
    fetch("/embed/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf || "" },
      body: JSON.stringify({ token: message.token, origin: event.origin })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (result.ok && typeof result.body.next === "string" && result.body.next.charAt(0) === "/") {
        window.location.replace(result.body.next);
        return;
      }
      say(result.body.message || "The portal could not sign you in.");
      window.parent.postMessage(
        { source: SOURCE, type: "error", code: result.body.error || "refused",
          message: result.body.message || "" },
        event.origin
      );
    }).catch(function () {
      say("The portal could not be reached. Close this window and try again.");
      window.parent.postMessage({ source: SOURCE, type: "error", code: "unreachable" }, event.origin);
    });
  });

  if (window.parent !== window) {
    // Nothing secret: any page may learn that the frame loaded (it could not frame us unless
    // FRAME_ANCESTORS allows it).
    window.parent.postMessage({ source: SOURCE, type: "handshake" }, "*");
  }
})();
