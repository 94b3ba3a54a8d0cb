// The partner pages' one script: the Copy buttons of tracking URLs (the URL is also in a readonly field,
// so the page works without it). Buttons start hidden and are shown once this script runs.
(function () {
  "use strict";

  function showCopyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    showCopyButtons(document);
  });
  // New content swapped in by htmx.
  document.addEventListener("htmx:load", function (event) {
    showCopyButtons(event.target);
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var input = document.getElementById(button.dataset.copy);
    var status = document.getElementById(button.dataset.copy + "-status");
    function say(text) {
      if (status) {
        status.textContent = text;
      }
    }
    navigator.clipboard.writeText(input.value).then(
      function () {
        say("Copied.");
      },
      function () {
        input.select();
        say("Press Ctrl+C to copy the selected URL.");
      }
    );
  });
})();
