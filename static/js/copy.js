// Copy buttons ([data-copy] names the element whose text is copied) and fill buttons ([data-fill] names an
// input, [data-value] what to put in it). Listeners only: pages carry no inline script.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    // Plain http (a development server on another host): the older way, through a selected text area.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function say(button, text) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = text;
    setTimeout(function () { button.textContent = label; }, 2000);
  }

  document.addEventListener("click", function (event) {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      if (!source) return;
      const text = "value" in source ? source.value : source.textContent;
      copyText(text).then(
        function () { say(copy, "Copied"); },
        function () { say(copy, "Select and copy by hand"); }
      );
      return;
    }
    const fill = event.target.closest("[data-fill]");
    if (fill) {
      const input = document.querySelector(fill.dataset.fill);
      if (!input) return;
      input.value = fill.dataset.value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
      input.focus();
    }
  });
})();
