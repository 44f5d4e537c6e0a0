// The connect page's schema picker is redrawn when the connection URL changes. A schema typed into the box
// while that redraw was on its way would be wiped by it (the request carried the box as it was before):
// put the typed text back, and let the setup SQL follow it. Listeners only: pages carry no inline script.
(function () {
  "use strict";

  function isPicker(event) {
    return event.detail.elt && event.detail.elt.id === "schema-picker";
  }

  function boxValue() {
    const box = document.getElementById("schemas-typed");
    return box ? box.value : null;
  }

  let sent = null;
  let typedSince = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isPicker(event)) sent = boxValue();
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!isPicker(event)) return;
    const now = boxValue();
    typedSince = now !== null && now !== sent ? now : null;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (!isPicker(event) || typedSince === null) return;
    const box = document.getElementById("schemas-typed");
    if (box && box.value !== typedSince) {
      box.value = typedSince;
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
    typedSince = null;
  });
})();
