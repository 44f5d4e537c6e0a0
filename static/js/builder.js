// The builder's small behaviours: variable picker, modal dialog, add menus, growing text areas.
(function () {
  "use strict";
  let lastField = null;

  document.addEventListener("focusin", function (event) {
    if (event.target.matches("[data-variables]")) lastField = event.target;
  });

  function insertAtCursor(field, text) {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? field.value.length;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.setSelectionRange(start + text.length, start + text.length);
    // Saving listens for input events, so an inserted variable is saved like typed text.
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function closeModal() {
    const modal = document.getElementById("modal");
    if (modal) modal.innerHTML = "";
    const opener = document.getElementById("publish-button");
    if (opener) opener.focus();
  }

  document.addEventListener("click", function (event) {
    const chip = event.target.closest("[data-insert]");
    if (chip) {
      const field = lastField && document.body.contains(lastField)
        ? lastField : document.querySelector("#panel [data-variables]");
      // A condition takes `item.name`, a field box the bare name, a template `{{ item.name }}`.
      let text = chip.dataset.insert;
      if (field && field.matches("[data-expression]")) text = chip.dataset.expression;
      if (field && field.matches("[data-field-name]")) {
        field.value = chip.dataset.name;
        field.dispatchEvent(new Event("input", { bubbles: true }));
        return;
      }
      if (field) insertAtCursor(field, text);
      return;
    }
    if (event.target.closest("[data-close]") || event.target.matches("[data-modal]")) {
      closeModal();
      return;
    }
    // One add menu open at a time; a click elsewhere closes them.
    document.querySelectorAll("details.add-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    if (document.querySelector("#modal [data-modal]")) closeModal();
    document.querySelectorAll("details.add-menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  // The fields edited since the last save: a tab whose copy turned out stale saves only these.
  const changed = new Set();
  document.addEventListener("input", function (event) {
    if (event.target.form && event.target.form.id === "step-form" && event.target.name) {
      changed.add(event.target.name);
    }
  });
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.id === "step-form") {
      event.detail.parameters.changed = Array.from(changed).join(",");
      changed.clear();
    }
  });

  function grow(area) {
    area.style.height = "auto";
    area.style.height = Math.min(area.scrollHeight + 2, 360) + "px";
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches("#panel textarea")) grow(event.target);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id === "modal") {
      const first = document.querySelector("#modal .modal button, #modal .modal a");
      if (first) first.focus();
    }
    document.querySelectorAll("#panel textarea").forEach(grow);
  });
  // htmx has wired up the step form: saving listens from here on (browser tests wait for this too).
  document.addEventListener("htmx:load", function () {
    const form = document.getElementById("step-form");
    if (form) form.dataset.ready = "true";
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#panel textarea").forEach(grow);
  });

  // Zoom: the flow is drawn at a scale (CSS zoom, so the canvas scrolls the scaled size). "Fit" (the
  // default) shrinks it, never enlarges it, until the whole workflow shows in the canvas and the window.
  // The choice survives htmx redrawing the builder after each click.
  const ZOOM_STEPS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5];
  let zoom = null; // null: fit
  function fitScale(canvas, flow) {
    flow.style.zoom = 1;
    const style = getComputedStyle(canvas);
    const width = canvas.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const top = canvas.getBoundingClientRect().top + window.scrollY;
    const height = Math.max(window.innerHeight - top - 48, 240);
    return Math.max(ZOOM_STEPS[0], Math.min(1, width / flow.scrollWidth, height / flow.scrollHeight));
  }
  function applyZoom() {
    const canvas = document.querySelector("[data-canvas]");
    const flow = canvas && canvas.querySelector(".flow");
    if (!flow) return;
    const scale = zoom === null ? fitScale(canvas, flow) : zoom;
    flow.style.zoom = scale;
    flow.dataset.scale = scale.toFixed(2);
    const level = canvas.querySelector("[data-zoom-level]");
    if (level) level.textContent = Math.round(scale * 100) + "%" + (zoom === null ? " (fit)" : "");
  }
  function current() {
    const flow = document.querySelector("[data-canvas] .flow");
    return flow ? parseFloat(flow.dataset.scale || "1") : 1;
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-zoom]");
    if (!button) return;
    const now = current();
    if (button.dataset.zoom === "fit") zoom = null;
    else if (button.dataset.zoom === "in") zoom = ZOOM_STEPS.find((z) => z > now + 0.001) || ZOOM_STEPS.at(-1);
    else zoom = ZOOM_STEPS.slice().reverse().find((z) => z < now - 0.001) || ZOOM_STEPS[0];
    applyZoom();
  });
  document.addEventListener("DOMContentLoaded", applyZoom);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "builder-body") applyZoom();
  });
  window.addEventListener("resize", function () {
    if (zoom === null) applyZoom();
  });
})();
