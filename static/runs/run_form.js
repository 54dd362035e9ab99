// The run form: focus the error summary after a submit with errors, and show that
// "Start run" is busy while Coalesce answers. A file, not inline script, for the CSP.
(function () {
  "use strict";

  function focusSummary() {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  }

  function markBusy(button) {
    if (!button || button.id !== "start-run") { return; }
    button.dataset.idleText = button.textContent;
    button.textContent = button.dataset.busyText || "Starting run…";
    button.setAttribute("aria-busy", "true");
    button.classList.add("busy");
    // Disabled after this tick, so the click that submits is not cancelled.
    setTimeout(function () { button.disabled = true; }, 0);
  }

  document.addEventListener("DOMContentLoaded", focusSummary);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "run-form") { focusSummary(); }
  });
  document.addEventListener("submit", function (event) {
    if (event.target && event.target.id === "run-form") { markBusy(event.submitter); }
  }, true);
  document.addEventListener("htmx:afterRequest", function () {
    var button = document.getElementById("start-run");
    if (button && button.disabled && button.dataset.idleText) {
      // The form came back (errors or warnings) or the request failed: usable again.
      button.disabled = false;
      button.textContent = button.dataset.idleText;
      button.removeAttribute("aria-busy");
      button.classList.remove("busy");
    }
  });
})();
