// Small behaviours for the portal. No inline scripts anywhere: the CSP forbids them.
(function () {
  "use strict";

  function alertsRegion() {
    return document.getElementById("alerts");
  }

  function showAlert(message) {
    var region = alertsRegion();
    if (!region) { return; }
    var box = document.createElement("div");
    box.className = "alert alert-error";
    box.setAttribute("role", "alert");
    box.textContent = message;
    region.replaceChildren(box);
  }

  // Error responses that the server meant for the alert region (HX-Retarget: #alerts) are
  // swapped there; htmx 2 does not swap 4xx/5xx bodies on its own.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (event.detail.isError && xhr && xhr.getResponseHeader("HX-Retarget") === "#alerts") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Any other failed request gets a plain, generic message.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Retarget") === "#alerts") { return; }
    showAlert("Something went wrong (" + (xhr ? xhr.status : "?") + "). Please try again.");
  });

  document.addEventListener("htmx:sendError", function () {
    showAlert("The portal could not be reached. Check your connection and try again.");
  });

  // <button data-confirm="Are you sure?"> asks before submitting.
  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // <button data-copy="#element-id"> copies that element's text.
  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-copy]");
    if (!el) { return; }
    var source = document.querySelector(el.getAttribute("data-copy"));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        el.setAttribute("data-copied", "true");
        window.setTimeout(function () { el.removeAttribute("data-copied"); }, 1500);
      });
    }
  });
})();
