// DOM and formatting helpers. API text reaches the page through textContent or
// setAttribute only (h() below), never through innerHTML.

export const $ = (id) => document.getElementById(id);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** createElement with attributes and children; strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clock(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "--:--.-";
  const tenths = Math.max(0, Math.round(seconds * 10));
  const hours = Math.floor(tenths / 36000);
  const minutes = Math.floor((tenths % 36000) / 600);
  const rest = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  const mmss = `${String(minutes).padStart(2, "0")}:${rest}`;
  return hours ? `${hours}:${mmss}` : mmss;
}

export const span = (start, end) => `[${clock(start)} – ${clock(end)}]`;
export const shortId = (id) => String(id).slice(0, 8);
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function mediaLabel(task) {
  const media = (task.data && task.data.media) || {};
  return media.filename || media.url || (media.blob_id ? "upload" : "");
}

/**
 * Give ``el`` its speaker's colour (``--hue``, read by app.css): SPEAKER_00, 01, … take
 * hues a golden angle apart (no two of a task's 20 share one; speakers in turn differ
 * most); app.css picks a lightness readable on the theme. Set through CSSOM, not a
 * style attribute: the page's CSP allows no inline style.
 */
export function paintSpeaker(el, label) {
  const text = String(label);
  const digits = Number.parseInt(text.replace(/\D+/g, ""), 10);
  const index = Number.isFinite(digits) ? digits
    : [...text].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) % 997, 0);
  el.classList.add("spk");
  el.style.setProperty("--hue", String(Math.round((250 + index * 137.508) % 360)));
  return el;
}
