// The API's health in the header, and the API key: checked against the API, kept in
// this browser's localStorage, forgotten on request.

import { api, setApiKey } from "./api.js";
import { $ } from "./dom.js";

const KEY_STORAGE = "hark.apiKey";

export async function checkHealth() {
  const el = $("health");
  try {
    const response = await fetch("/health", { cache: "no-store" });
    const body = await response.json();
    const down = ["database", "broker"].filter((part) => body[part] && !body[part].ok);
    el.textContent = down.length ? `API degraded: ${down.join(", ")} unreachable` : "API ok";
    el.className = `health ${down.length ? "bad" : "ok"}`;
  } catch {
    el.textContent = "API unreachable";
    el.className = "health bad";
  }
}

function maskKey(key) {
  return key.length > 12 ? `${key.slice(0, 6)}…${key.slice(-4)}` : "…";
}

function enableKeyedForms(on) {
  for (const fieldset of document.querySelectorAll(".needs-key")) fieldset.disabled = !on;
}

/** Check ``key``; when accepted, ``onAccepted(counts)`` fills the page. */
async function useKey(key, { remember }, onAccepted) {
  setApiKey(key);
  const status = $("key-status");
  status.textContent = "Checking the key…";
  try {
    const counts = await api("/tasks/count");
    if (remember) localStorage.setItem(KEY_STORAGE, key);
    status.className = "note ok";
    status.textContent = `Authenticated with key ${maskKey(key)} (kept in this browser).`;
    $("key-input").value = "";
    enableKeyedForms(true);
    onAccepted(counts);
    return true;
  } catch (err) {
    setApiKey("");
    enableKeyedForms(false);
    status.className = "note bad";
    status.textContent = err.status === 401
      ? `The key was refused: ${err.message}.`
      : `Could not check the key: ${err.message}.`;
    if (err.status === 401 && !remember) localStorage.removeItem(KEY_STORAGE);
    return false;
  }
}

function forgetKey(onForgotten) {
  localStorage.removeItem(KEY_STORAGE);
  setApiKey("");
  enableKeyedForms(false);
  onForgotten();
  const status = $("key-status");
  status.className = "note";
  status.textContent = "Key forgotten. Paste a key to continue.";
}

/** Wire the key form; use the key kept from an earlier visit, if any. */
export function initKeys({ accepted, forgotten }) {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (key) useKey(key, { remember: true }, accepted);
  });
  $("key-forget").addEventListener("click", () => forgetKey(forgotten));
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) useKey(saved, { remember: false }, accepted);
}
