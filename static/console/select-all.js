// A "select all" checkbox (data-select-all="<form id>") ticks every row checkbox of that form on the page.
// Without JavaScript the rows are still selected one by one; htmx swaps of the rows keep working.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[data-select-all]")) {
      return;
    }
    var form = box.getAttribute("data-select-all");
    document.querySelectorAll('input[type="checkbox"][name="ids"][form="' + form + '"]').forEach(function (row) {
      row.checked = box.checked;
    });
  });
})();
