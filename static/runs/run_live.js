// The run page's live part (no inline script: the page runs under a strict CSP).
// - An answer identical to the last one is not swapped, so nothing is re-announced.
// - After a swap, the status line (#run-announce, the one live region) gets the new
//   outcome and progress, only when they changed.
// - The elapsed time ticks every second, and relative times ("3 min ago") stay current:
//   an unchanged run's poll answers 304, so the server does not re-render them.
(function () {
  "use strict";
  var last = null;
  // What the page said when it loaded: only a change from it is announced.
  var announced = null;
  document.addEventListener("DOMContentLoaded", function () {
    var source = document.querySelector("#run-live [data-announce]");
    if (source) announced = source.dataset.announce;
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target.id !== "run-live") return;
    var text = event.detail.xhr.responseText;
    if (text === last) event.detail.shouldSwap = false;
    last = text;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "run-live") return;
    var source = event.detail.target.querySelector("[data-announce]");
    var region = document.getElementById("run-announce");
    if (source && region && source.dataset.announce !== announced) {
      announced = source.dataset.announce;
      region.textContent = announced;
    }
    tick();
  });

  // As runs.time_format.duration writes it: "45 s", "4 min 12 s", "2 h 05 min".
  function duration(seconds) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + pad(seconds % 60) + " s";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + pad(minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  // As runs.time_format.ago writes it.
  function ago(seconds) {
    if (seconds < 0) return "in the future";
    if (seconds < 60) return "just now";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 48 * 3600) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " days ago";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[datetime] + small.ago").forEach(function (element) {
      var at = Date.parse(element.previousElementSibling.getAttribute("datetime"));
      if (!isNaN(at)) element.textContent = ago((now - at) / 1000);
    });
    document.querySelectorAll("[data-elapsed-since]").forEach(function (element) {
      var since = Date.parse(element.dataset.elapsedSince);
      if (!isNaN(since)) element.textContent = duration(Math.max(0, Math.round((now - since) / 1000)));
    });
  }

  setInterval(tick, 1000);
})();
