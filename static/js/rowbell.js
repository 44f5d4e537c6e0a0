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
