// Each <time datetime="…"> shows UTC; its title (on hover) becomes the analyst's local time. Runs on load and
// after every htmx swap. No eval, no inline script: a same-origin file the Content-Security-Policy allows.
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", timeZoneName: "short"
  });

  function localise(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var times = scope.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        times[i].title = "Your local time: " + format.format(when);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (event) { localise(event.target); });
  // The swapped-in element replaces its target on outerHTML swaps: localise the whole page after settling.
  document.addEventListener("htmx:afterSettle", function () { localise(document); });
})();
