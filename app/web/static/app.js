// Hark's web page: one ES module, no framework, no build step.
// Every string that comes from the API reaches the page through textContent or
// setAttribute (see h() below), never through innerHTML.

const KEY_STORAGE = "hark.apiKey";
const POLL_MS = 700;
const PAGE_SIZE = 20;
const STATUSES = ["created", "assigned", "running", "completed", "failed", "not_finished"];
const RETRYABLE = new Set(["failed", "not_finished"]);
const TRANSCRIBING = new Set(["/analyze", "/index"]);
const FORMATS = ["txt", "srt", "vtt"];
const STATUS_TEXT = {
  created: "Queued",
  assigned: "Queued",
  running: "Running",
  not_finished: "Interrupted, will be retried",
  completed: "Done",
  failed: "Failed",
};

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- DOM helpers ---------------------------------------------------------------------

/** createElement with attributes and children; strings become text nodes. */
function h(tag, attrs = {}, ...children) {
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

function clock(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "--:--.-";
  const tenths = Math.max(0, Math.round(seconds * 10));
  const hours = Math.floor(tenths / 36000);
  const minutes = Math.floor((tenths % 36000) / 600);
  const rest = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  const mmss = `${String(minutes).padStart(2, "0")}:${rest}`;
  return hours ? `${hours}:${mmss}` : mmss;
}

const span = (start, end) => `[${clock(start)} – ${clock(end)}]`;
const shortId = (id) => String(id).slice(0, 8);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function mediaLabel(task) {
  const media = (task.data && task.data.media) || {};
  return media.filename || media.url || (media.blob_id ? "upload" : "");
}

// ---- API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const NETWORK_ERROR = "could not reach the API (network error)";
let apiKey = "";

function apiErrorFrom(status, statusText, body) {
  const ok = body && typeof body === "object";
  const message = ok && typeof body.message === "string" ? body.message
    : `${status} ${statusText || "error"}`;
  return new ApiError(status, ok ? body.error : "http_error", message, ok ? body.details : null);
}

/** fetch with the key; resolves to parsed JSON (or the Response with raw), throws ApiError. */
async function api(path, { method = "GET", json, raw = false } = {}) {
  const headers = { "x-api-key": apiKey, accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch {
    throw new ApiError(0, "network_error", NETWORK_ERROR);
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      // not JSON (a proxy's error page): the status line is all we have
    }
    throw apiErrorFrom(response.status, response.statusText, data);
  }
  return raw ? response : response.json();
}

/** Multipart POST with upload progress (fetch cannot report it). */
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("x-api-key", apiKey);
    xhr.setRequestHeader("accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300 && xhr.response) resolve(xhr.response);
      else reject(apiErrorFrom(xhr.status, xhr.statusText, xhr.response));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error", NETWORK_ERROR)));
    xhr.send(form);
  });
}

function flattenDetails(details, prefix = "") {
  if (details === null || details === undefined) return [];
  if (Array.isArray(details)) {
    const leaves = details.filter((d) => typeof d !== "object");
    const text = leaves.length ? [`${prefix || "request"}: ${leaves.join(" ")}`] : [];
    return text.concat(details.filter((d) => d && typeof d === "object")
      .flatMap((d) => flattenDetails(d, prefix)));
  }
  if (typeof details === "object") {
    return Object.entries(details)
      .flatMap(([key, value]) => flattenDetails(value, prefix ? `${prefix}.${key}` : key));
  }
  return [`${prefix || "request"}: ${details}`];
}

function showError(el, err) {
  if (!err) {
    el.replaceChildren();
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  const lines = err instanceof ApiError ? flattenDetails(err.details) : [];
  el.replaceChildren(
    h("strong", {}, err.status ? `Error ${err.status}: ` : "Error: "), message,
    lines.length ? h("ul", {}, lines.map((line) => h("li", {}, line))) : null,
  );
}

// ---- health --------------------------------------------------------------------------

async function checkHealth() {
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

// ---- API key -------------------------------------------------------------------------

function maskKey(key) {
  return key.length > 12 ? `${key.slice(0, 6)}…${key.slice(-4)}` : "…";
}

function enableKeyedForms(on) {
  for (const fieldset of document.querySelectorAll(".needs-key")) fieldset.disabled = !on;
}

async function useKey(key, { remember }) {
  apiKey = key;
  const status = $("key-status");
  status.textContent = "Checking the key…";
  try {
    const counts = await api("/tasks/count");
    if (remember) localStorage.setItem(KEY_STORAGE, key);
    status.className = "note ok";
    status.textContent = `Authenticated with key ${maskKey(key)} (kept in this browser).`;
    $("key-input").value = "";
    enableKeyedForms(true);
    renderCounts(counts);
    loadTasks(true);
    return true;
  } catch (err) {
    apiKey = "";
    enableKeyedForms(false);
    status.className = "note bad";
    status.textContent = err.status === 401
      ? `The key was refused: ${err.message}.`
      : `Could not check the key: ${err.message}.`;
    if (err.status === 401 && !remember) localStorage.removeItem(KEY_STORAGE);
    return false;
  }
}

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  apiKey = "";
  watching += 1;
  watchedId = null;
  enableKeyedForms(false);
  revokeDownloads();
  for (const id of ["job", "transcript", "tasks-empty", "load-more"]) $(id).hidden = true;
  for (const id of ["task-rows", "results", "collection-select", "analyze-error", "tasks-error",
    "search-error", "task-counts", "search-note"]) $(id).replaceChildren();
  const status = $("key-status");
  status.className = "note";
  status.textContent = "Key forgotten. Paste a key to continue.";
}

// ---- transcribe ----------------------------------------------------------------------

let watching = 0; // generation of the task being watched: a newer one stops older polls
let watchedId = null;
let announced = "";
let downloadUrls = [];

function setSource(source) {
  $("file-row").hidden = source !== "file";
  $("url-row").hidden = source !== "url";
}

function showJob(text, percent, label = text) {
  const value = Math.max(0, Math.min(100, Math.round(percent || 0)));
  $("job").hidden = false;
  $("job-status").textContent = text;
  $("job-progress").value = value;
  // Screen readers hear status changes and every quarter, not each poll.
  const news = `${label}, ${Math.floor(value / 25) * 25} %`;
  if (news !== announced) {
    announced = news;
    $("job-live").textContent = label === text ? text : `${label}: ${value} %`;
  }
}

async function submitAnalyze(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $("analyze-submit");
  showError($("analyze-error"), null);
  const options = { model: form.model.value, word_timestamps: form.word_timestamps.checked };
  const language = form.language.value.trim();
  if (language) options.language = language;
  button.disabled = true;
  watching += 1;
  $("transcript").hidden = true;
  let submitted;
  try {
    if (form.source.value === "file") {
      const file = $("file-input").files[0];
      if (!file) throw new Error("choose a file to upload");
      const body = new FormData();
      body.append("file", file, file.name);
      for (const [name, value] of Object.entries(options)) body.append(name, String(value));
      showJob(`Uploading ${file.name}…`, 0);
      submitted = await upload("/analyze?defer=true", body, (fraction) => {
        showJob(`Uploading ${file.name}… ${Math.round(fraction * 100)} %`, fraction * 100,
          `Uploading ${file.name}`);
      });
    } else {
      const url = $("url-input").value.trim();
      if (!url) throw new Error("give the URL of an audio or video file");
      showJob("Submitting…", 0);
      submitted = await api("/analyze?defer=true", {
        method: "POST", json: { media: { url }, ...options },
      });
    }
  } catch (err) {
    $("job").hidden = true;
    showError($("analyze-error"), err);
    return;
  } finally {
    button.disabled = false;
  }
  loadTasks(true);
  openTask(submitted.task_id);
}

/** Poll the task until it completes or fails, showing progress, then its result. */
async function openTask(id) {
  const token = ++watching;
  watchedId = id;
  showError($("analyze-error"), null);
  $("transcript").hidden = true;
  showJob(`Task ${shortId(id)}: loading…`, 0);
  let delay = POLL_MS;
  while (token === watching) {
    let task;
    try {
      task = await api(`/tasks/${encodeURIComponent(id)}`);
      delay = POLL_MS;
    } catch (err) {
      if (token !== watching) return;
      showError($("analyze-error"), err);
      if (err.status === 401 || err.status === 404) {
        $("job").hidden = true;
        return;
      }
      delay = Math.min(delay * 2, 8000); // the API or its database is down: back off
      await sleep(delay);
      continue;
    }
    if (token !== watching) return;
    showError($("analyze-error"), null);
    const done = task.status === "completed";
    const label = STATUS_TEXT[task.status] || task.status;
    const media = mediaLabel(task);
    showJob(`${label}: task ${shortId(task.id)}${media ? ` (${media})` : ""}, `
      + `${done ? 100 : task.progress || 0} %`, done ? 100 : task.progress, label);
    replaceTaskRow(task);
    if (done || task.status === "failed") {
      loadCounts();
      if (done && task.endpoint === "/index") loadCollections();
      if (done) await showResult(task);
      else showError($("analyze-error"), new Error(
        task.error ? `${task.error.type}: ${task.error.message}` : "the task failed"));
      return;
    }
    await sleep(delay);
  }
}

function revokeDownloads() {
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
}

async function showResult(task) {
  const article = $("transcript");
  const result = task.endpoint === "/index" && task.result && task.result.transcript
    ? task.result.transcript : task.result || {};
  const segments = Array.isArray(result.segments) ? result.segments : null;
  revokeDownloads();
  const meta = [
    ["Task", h("code", { title: task.id }, shortId(task.id))],
    ["Media", mediaLabel(task) || "—"],
  ];
  if (segments) {
    meta.push(["Language", result.language || "—"], ["Duration", `${clock(result.duration)}`],
      ["Model", result.model || "—"], ["Segments", String(segments.length)]);
  }
  $("transcript-meta").replaceChildren(...meta.flatMap(([term, value]) => [
    h("div", {}, h("dt", {}, term), h("dd", {}, value)),
  ]));
  $("transcript-title").textContent = segments ? "Transcript" : "Result";
  const list = $("segments");
  if (segments) {
    list.replaceChildren(...segments.map((segment) => h("li", {},
      h("span", { class: "ts" }, span(segment.start, segment.end)), " ",
      h("span", { class: "seg-text" }, Array.isArray(segment.words) && segment.words.length
        ? segment.words.flatMap((w, i) => [i ? " " : null,
          h("span", { class: "word", title: span(w.start, w.end) }, String(w.word).trim())])
        : String(segment.text || "").trim()))));
    if (!segments.length) list.replaceChildren(h("li", { class: "note" }, "No speech found."));
  } else {
    list.replaceChildren(h("li", {}, h("pre", {}, JSON.stringify(task.result, null, 2))));
  }
  article.hidden = false;
  const downloads = $("downloads");
  downloads.replaceChildren();
  if (!segments || !TRANSCRIBING.has(task.endpoint)) return;
  downloads.append("Download: ");
  const base = (mediaLabel(task).split("/").pop() || "").replace(/\.[^.]*$/, "")
    || `transcript-${shortId(task.id)}`;
  const token = watching;
  const links = await Promise.all(FORMATS.map(async (format) => {
    try {
      const response = await api(
        `/tasks/${encodeURIComponent(task.id)}/transcript?format=${format}`, { raw: true });
      const url = URL.createObjectURL(await response.blob());
      downloadUrls.push(url);
      return h("a", { href: url, download: `${base}.${format}`, class: "download" },
        format.toUpperCase());
    } catch (err) {
      return h("span", { class: "bad", title: err.message }, `${format.toUpperCase()} unavailable`);
    }
  }));
  if (token === watching) downloads.append(...links);
}

// ---- tasks ---------------------------------------------------------------------------

let nextCursor = null;
let listing = 0;

function renderCounts(counts) {
  const parts = STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  $("task-counts").textContent = `${plural(counts.total || 0, "task")}`
    + (parts.length ? `: ${parts.join(" · ")}` : "");
}

async function loadCounts() {
  try {
    renderCounts(await api("/tasks/count"));
  } catch (err) {
    showError($("tasks-error"), err);
  }
}

function taskRow(task) {
  const progress = task.status === "completed" ? 100 : task.progress || 0;
  const open = () => {
    openTask(task.id);
    $("transcribe").scrollIntoView({ behavior: "smooth", block: "start" });
  };
  const actions = h("td", { class: "actions" });
  if (RETRYABLE.has(task.status)) {
    actions.append(h("button", {
      type: "button", class: "secondary", "aria-label": `Retry task ${task.id}`,
      onclick: (event) => {
        event.stopPropagation();
        retryTask(task.id);
      },
    }, "Retry"));
  }
  actions.append(h("button", {
    type: "button", class: "danger", "aria-label": `Delete task ${task.id}`,
    onclick: (event) => {
      event.stopPropagation();
      deleteTask(task.id);
    },
  }, "Delete"));
  const state = `${task.status}:${progress}`;
  return h("tr", { "data-id": task.id, "data-state": state, onclick: open },
    h("td", {}, h("button", {
      type: "button", class: "link", title: task.id, "aria-label": `Open task ${task.id}`,
      onclick: (event) => {
        event.stopPropagation();
        open();
      },
    }, shortId(task.id))),
    h("td", {}, h("span", {
      class: `badge s-${task.status}`,
      title: task.error ? `${task.error.type}: ${task.error.message}` : null,
    }, task.status)),
    h("td", {}, h("code", {}, task.endpoint)),
    h("td", { class: "media" }, mediaLabel(task)),
    h("td", { class: "num" }, `${progress} %`),
    h("td", {}, h("time", { datetime: task.created_at, title: task.created_at },
      when(task.created_at))),
    actions);
}

function findRow(id) {
  return [...$("task-rows").children].find((row) => row.dataset.id === id);
}

function replaceTaskRow(task) {
  const row = findRow(task.id);
  const fresh = taskRow(task);
  // Polling repeats the same state: keep the row (and any focus in it) when unchanged.
  if (row && row.dataset.state !== fresh.dataset.state) row.replaceWith(fresh);
}

async function loadTasks(reset) {
  const token = reset ? ++listing : listing;
  const params = new URLSearchParams({ per_page: String(PAGE_SIZE) });
  const status = $("status-filter").value;
  if (status) params.set("status", status);
  if (!reset && nextCursor) params.set("cursor", nextCursor);
  showError($("tasks-error"), null);
  try {
    const page = await api(`/tasks?${params}`);
    if (token !== listing) return;
    const rows = $("task-rows");
    if (reset) rows.replaceChildren();
    for (const task of page.tasks) {
      const existing = findRow(task.id);
      if (existing) existing.replaceWith(taskRow(task));
      else rows.append(taskRow(task));
    }
    nextCursor = page.next_cursor || null;
    $("load-more").hidden = !nextCursor;
    $("tasks-empty").hidden = rows.children.length > 0;
    $("tasks-empty").textContent = status ? `No ${status} tasks.` : "No tasks yet.";
  } catch (err) {
    showError($("tasks-error"), err);
  }
  loadCounts();
  if (reset) loadCollections();
}

async function retryTask(id) {
  try {
    const task = await api(`/tasks/${encodeURIComponent(id)}/retry`, { method: "POST" });
    replaceTaskRow(task);
    openTask(id);
  } catch (err) {
    showError($("tasks-error"), err);
  }
}

async function deleteTask(id) {
  if (!window.confirm(`Delete task ${shortId(id)}? A queued or running task is cancelled, `
    + "and its uploaded media is deleted.")) return;
  try {
    await api(`/tasks/${encodeURIComponent(id)}`, { method: "DELETE" });
    const row = findRow(id);
    if (row) row.remove();
    $("tasks-empty").hidden = $("task-rows").children.length > 0;
    if (watchedId === id) {
      watching += 1;
      watchedId = null;
      $("job").hidden = true;
      $("transcript").hidden = true;
    }
    loadCounts();
  } catch (err) {
    showError($("tasks-error"), err);
  }
}

// ---- search --------------------------------------------------------------------------

async function loadCollections() {
  const select = $("collection-select");
  const note = $("search-note");
  try {
    const { collections } = await api("/collections?per_page=1000");
    const selected = select.value;
    select.replaceChildren(...collections.map((c) => h("option", { value: c.collection_id },
      c.name && c.name !== c.collection_id ? `${c.name} (${c.collection_id})` : c.collection_id,
      typeof c.media_count === "number" ? ` · ${plural(c.media_count, "media item")}` : "")));
    if (collections.some((c) => c.collection_id === selected)) select.value = selected;
    note.textContent = collections.length ? ""
      : "No collections yet: index media into one with POST /index, then search it here.";
  } catch (err) {
    select.replaceChildren();
    if (err.status === 404) note.textContent = "Search is not available on this server.";
    else showError($("search-error"), err);
  }
}

async function submitSearch(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const collection = form.collection.value;
  const query = form.query.value.trim();
  const topK = Number.parseInt(form.top_k.value, 10) || 10;
  showError($("search-error"), null);
  const results = $("results");
  if (!collection) {
    showError($("search-error"), new Error("choose a collection"));
    return;
  }
  $("search-note").textContent = "Searching…";
  try {
    const body = await api(`/collections/${encodeURIComponent(collection)}/search`, {
      method: "POST", json: { query, top_k: topK },
    });
    $("search-note").textContent = `${plural(body.results.length, "result")} for “${query}” `
      + `in ${collection}.`;
    results.replaceChildren(...body.results.map((hit) => h("li", {},
      h("div", { class: "hit-head" },
        h("strong", {}, hit.media_id), " ",
        h("span", { class: "ts" }, span(hit.start, hit.end)), " ",
        h("span", { class: "score" },
          `score ${typeof hit.score === "number" ? hit.score.toFixed(3) : "?"}`)),
      h("p", {}, String(hit.text || "").trim()))));
  } catch (err) {
    $("search-note").textContent = "";
    results.replaceChildren();
    showError($("search-error"), err);
  }
}

// ---- wiring --------------------------------------------------------------------------

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (key) useKey(key, { remember: true });
  });
  $("key-forget").addEventListener("click", forgetKey);
  for (const radio of document.querySelectorAll("input[name=source]")) {
    radio.addEventListener("change", () => setSource(radio.value));
  }
  $("analyze-form").addEventListener("submit", submitAnalyze);
  $("tasks-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadTasks(true);
  });
  $("status-filter").addEventListener("change", () => loadTasks(true));
  $("load-more").addEventListener("click", () => loadTasks(false));
  $("search-form").addEventListener("submit", submitSearch);
  checkHealth();
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) useKey(saved, { remember: false });
}

init();
