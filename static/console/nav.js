// On a narrow screen the navigation collapses behind a "Menu" button (aria-expanded says its state). Without
// JavaScript the navigation simply stays open; the button is only shown by the stylesheet on narrow screens.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var bar = document.querySelector(".topbar");
    var button = document.getElementById("nav-toggle");
    if (!bar || !button) {
      return;
    }
    bar.classList.add("nav-collapsible", "nav-collapsed");
    button.hidden = false;
    button.addEventListener("click", function () {
      var open = bar.classList.toggle("nav-collapsed") === false;
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  });
})();
