// Submits the form_post response form (no inline script, so it works under a strict CSP).
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());
