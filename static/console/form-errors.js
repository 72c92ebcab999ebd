// A page that comes back with form errors scrolls to the first one and puts the keyboard focus in its field,
// so an error below the fold is never missed. Runs once on load (not after htmx swaps of list rows).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var field = document.querySelector("main form [aria-invalid='true']");
    var target = field || document.querySelector("main form .error[role='alert'], main form .errorlist");
    if (!target) {
      return;
    }
    target.scrollIntoView({ block: "center" });
    if (field && typeof field.focus === "function") {
      field.focus({ preventScroll: true });
    }
  });
})();
