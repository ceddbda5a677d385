// Link Account inside the host's iframe (progressive enhancement; no inline script: CSP).
// Microsoft's sign-in cannot be framed, and a popup does not share the iframe's partitioned
// cookies, so: open the popup synchronously in the click handler (popup blockers), ask the
// server for a one-time handoff, send the popup there, and learn the result by polling the
// server (never window.opener, BroadcastChannel or shared cookies). Top level: the plain form
// POST redirects to Microsoft, no script needed. docs/decisions/0002-delegated-consent-in-a-popup.md
(function () {
  "use strict";
  if (window.portalLinkReady) { return; }
  window.portalLinkReady = true;

  function framed() {
    try { return window.top !== window.self; } catch (e) { return true; }
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) { return ""; }
  }

  function showError(panel, message) {
    var box = document.createElement("div");
    box.className = "alert alert-error";
    box.setAttribute("role", "alert");
    box.textContent = message;
    panel.insertBefore(box, panel.firstChild.nextSibling);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("form[data-link-popup] button[type=submit]");
    if (!button || !framed()) { return; }
    var form = button.form;
    var panel = form.closest("#sp-panel");
    event.preventDefault();
    // Synchronously, while the click's user activation is fresh.
    var popup = window.open("", "portal-link", "popup=yes,width=520,height=700");
    if (popup) {
      try {
        popup.document.title = "Starting the Microsoft sign-in";
        popup.document.body.textContent = "Starting the Microsoft sign-in…";
      } catch (e) { /* not ours to write: nothing to show */ }
    }
    button.disabled = true;
    // The sign-in is too old for Link Account: confirm the password first, in this frame
    // (it comes back to this page), and drop the popup that has nothing to show yet.
    function reauthenticate(body) {
      if (!body || body.error !== "reauth_required" || !body.reauth_url) {
        throw new Error("status 401");
      }
      if (popup && !popup.closed) { popup.close(); }
      window.location.assign(body.reauth_url);
      return null;
    }
    fetch(form.getAttribute("data-link-popup"), {
      method: "POST",
      credentials: "same-origin",
      // This page sends no Referer by default; the portal itself may learn where the click
      // came from, so a re-authentication can bring the user back here.
      referrerPolicy: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
    }).then(function (response) {
      if (response.status === 401) { return response.json().then(reauthenticate); }
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.json();
    }).then(function (data) {
      if (!data) { return; }
      var status = data.status_url;
      if (popup && !popup.closed) {
        popup.location.replace(data.handoff_url);
      } else {
        status += (status.indexOf("?") < 0 ? "?" : "&") + "blocked=1";
      }
      // The pending panel polls itself every 2 s (hx-trigger="load delay:2s") until the
      // server reports a result or the 10-minute handoff expires.
      window.htmx.ajax("GET", status, { target: "#sp-panel", swap: "outerHTML" });
    }).catch(function () {
      if (popup && !popup.closed) { popup.close(); }
      button.disabled = false;
      showError(panel, "The sign-in could not be started. Please try again.");
    });
  });

  // The popup's last page: "You can close this window" (best effort; the user can always).
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-window]")) { window.close(); }
  });
})();
