// Behaviour every page shares, here rather than in inline handlers so that the Content-Security-Policy
// can forbid inline script (config/settings.py CONTENT_SECURITY_POLICY).

// <form data-confirm="Delete this?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// <button data-copy="#field">: copy the field's value to the clipboard.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  if (!field) return;
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    document.execCommand("copy"); // no clipboard API outside HTTPS and localhost
  }
  button.textContent = "Copied";
});

// An htmx request that fails (a server error, a 404, no connection) says so where the answer would
// have gone, "Could not load this step (error id 3f9c0a1b)", instead of leaving the click unanswered
// or swapping an error page into the page. The error id (config/error_views.py) finds the log line.
// What was being loaded is named by the nearest [data-load-what] around the element that asked.
function showLoadError(event, reason) {
  const asker = event.detail.elt;
  const target = event.detail.target || asker;
  if (!target || !target.isConnected) return;
  const named = (asker && asker.closest("[data-load-what]")) || target.closest("[data-load-what]");
  const what = named ? named.dataset.loadWhat : "this part of the page";
  let note = target.querySelector(":scope > .load-error");
  if (!note) {
    note = document.createElement("p");
    note.className = "load-error";
    note.setAttribute("role", "alert");
    target.prepend(note);
    note.scrollIntoView({ block: "nearest" }); // once: a failing poll must not keep moving the page
  }
  note.textContent = `Could not load ${what} (${reason}). Try again, or reload the page.`;
}

document.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  const errorId = xhr.getResponseHeader("X-Error-Id");
  showLoadError(event, errorId ? `error id ${errorId}` : `the server answered ${xhr.status}`);
});

document.addEventListener("htmx:sendError", (event) => {
  showLoadError(event, "Rowbell could not be reached");
});

// A dialog loaded into #modal (the activity log's bulk action): [data-dismiss] and Escape close it, and
// focus goes back to the button that opened it.
function dismissModal() {
  const modal = document.getElementById("modal");
  if (!modal || !modal.querySelector("[data-dismissable]")) return;
  modal.innerHTML = "";
  const opener = document.querySelector("[data-opens-modal]");
  if (opener) opener.focus();
}
document.addEventListener("click", (event) => {
  if (event.target.closest("#modal [data-dismiss]")) dismissModal();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") dismissModal();
});
