// The dashboard re-fetches its widgets every 30 s (hx-trigger on #dashboard-widgets). Skip a refresh while the
// keyboard focus is inside them, so the swap never throws a keyboard user back to the top of the page.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeRequest", function (event) {
    var widgets = document.getElementById("dashboard-widgets");
    if (widgets && event.target === widgets && widgets.contains(document.activeElement)) {
      event.preventDefault();
    }
  });
})();
