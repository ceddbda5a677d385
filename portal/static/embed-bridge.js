// Pages of a connect session (inside the host product's frame): report to the host page, and
// only to the origin the session was traded for, that the portal is ready, that a connection
// is connected, or that the user closed it.
(function () {
  "use strict";

  var SOURCE = "entra-portal";
  var meta = document.querySelector('meta[name="portal-parent-origin"]');
  if (!meta || window.parent === window) { return; }
  var origin = meta.content;
  var returnUrl = meta.getAttribute("data-return-url") || null;

  function post(type, data) {
    var message = { source: SOURCE, type: type };
    Object.keys(data || {}).forEach(function (key) { message[key] = data[key]; });
    window.parent.postMessage(message, origin);
  }

  function seen(id) {
    try {
      if (window.sessionStorage.getItem("connected:" + id)) { return true; }
      window.sessionStorage.setItem("connected:" + id, "1");
    } catch (error) { /* storage refused: report again rather than never */ }
    return false;
  }

  function scan() {
    var marked = document.querySelectorAll('[data-connection-state="connected"][data-connection-id]');
    Array.prototype.forEach.call(marked, function (element) {
      var id = element.getAttribute("data-connection-id");
      if (!seen(id)) { post("connected", { connection_id: id }); }
    });
  }

  post("ready", {});
  scan();
  document.addEventListener("htmx:afterSettle", scan);
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-embed-close]")) {
      post("close", returnUrl ? { return_url: returnUrl } : {});
    }
  });
})();
