// Hark's web page: ES modules, no framework, no build step. This one wires the page:
// the key, submitting, the opened task (live progress, then its workspace), the tasks
// table and search. Every string from the API reaches the page as text (see dom.js).

import { api, follow, hasApiKey, setApiKey, showError } from "./api.js";
import { $, h, mediaLabel, plural, shortId, span, when } from "./dom.js";
import { dropZone, stopAll, submitFiles } from "./uploads.js";
import { clearResult, showResult } from "./workspace.js";

const KEY_STORAGE = "hark.apiKey";
const PAGE_SIZE = 20;
const STATUSES = ["created", "assigned", "running", "completed", "failed", "not_finished"];
const RETRYABLE = new Set(["failed", "not_finished"]);
const STATUS_TEXT = {
  created: "Queued",
  assigned: "Queued",
  running: "Running",
  not_finished: "Interrupted, will be retried",
  completed: "Done",
  failed: "Failed",
  deleted: "Deleted",
};

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
    renderCounts(counts);
    loadTasks(true);
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

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  setApiKey("");
  stopWatching();
  stopAll();
  enableKeyedForms(false);
  clearResult();
  for (const id of ["job", "tasks-empty", "load-more"]) $(id).hidden = true;
  for (const id of ["task-rows", "results", "collection-select", "analyze-error", "tasks-error",
    "search-error", "task-counts", "search-note"]) $(id).replaceChildren();
  const status = $("key-status");
  status.className = "note";
  status.textContent = "Key forgotten. Paste a key to continue.";
}

// ---- transcribe ----------------------------------------------------------------------

let watchedId = null;
let stopWatch = () => {};
let announced = "";

function stopWatching() {
  stopWatch();
  stopWatch = () => {};
  watchedId = null;
}

function setSource(source) {
  $("file-row").hidden = source !== "file";
  $("url-row").hidden = source !== "url";
}

function showJob(text, percent, label = text) {
  const value = Math.max(0, Math.min(100, Math.round(percent || 0)));
  $("job").hidden = false;
  $("job-status").textContent = text;
  $("job-progress").value = value;
  // Screen readers hear status changes and every quarter, not each update.
  const news = `${label}, ${Math.floor(value / 25) * 25} %`;
  if (news !== announced) {
    announced = news;
    $("job-live").textContent = label === text ? text : `${label}: ${value} %`;
  }
}

function analyzeOptions(form) {
  const options = { model: form.model.value, word_timestamps: form.word_timestamps.checked };
  const language = form.language.value.trim();
  if (language) options.language = language;
  return options;
}

const uploadHooks = {
  open: (id) => openTask(id),
  first: (id) => {
    loadTasks(true);
    openTask(id);
  },
  changed: (id, state, final) => {
    updateRow(id, state);
    if (final) loadTasks(true);
  },
};

async function sendFiles(files) {
  if (!hasApiKey()) return;
  showError($("analyze-error"), null);
  const button = $("analyze-submit");
  button.disabled = true;
  try {
    await submitFiles(files, analyzeOptions($("analyze-form")), uploadHooks);
  } finally {
    button.disabled = false;
  }
}

async function submitAnalyze(event) {
  event.preventDefault();
  const form = event.currentTarget;
  showError($("analyze-error"), null);
  if (form.source.value === "file") {
    const files = [...$("file-input").files];
    if (!files.length) showError($("analyze-error"), new Error("choose a file to upload"));
    else await sendFiles(files);
    return;
  }
  const button = $("analyze-submit");
  const url = $("url-input").value.trim();
  button.disabled = true;
  let submitted;
  try {
    if (!url) throw new Error("give the URL of an audio or video file");
    showJob("Submitting…", 0);
    submitted = await api("/analyze?defer=true", {
      method: "POST", json: { media: { url }, ...analyzeOptions(form) },
    });
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

/** Follow the task live (stream, else polling), then show its workspace. */
function openTask(id, { at } = {}) {
  stopWatching();
  watchedId = id;
  showError($("analyze-error"), null);
  clearResult();
  showJob(`Task ${shortId(id)}: loading…`, 0);
  stopWatch = follow(id, async (state, final) => {
    if (watchedId !== id) return;
    const done = state.status === "completed";
    const label = STATUS_TEXT[state.status] || state.status;
    showJob(`${label}: task ${shortId(id)}, ${done ? 100 : state.progress || 0} %`,
      done ? 100 : state.progress, label);
    updateRow(id, state);
    if (!final) return;
    loadCounts();
    if (state.status === "deleted") {
      $("job").hidden = true;
      return;
    }
    let task;
    try {
      task = await api(`/tasks/${encodeURIComponent(id)}`);
    } catch (err) {
      showError($("analyze-error"), err);
      return;
    }
    if (watchedId !== id) return;
    const media = mediaLabel(task);
    showJob(`${label}: task ${shortId(id)}${media ? ` (${media})` : ""}, `
      + `${done ? 100 : task.progress || 0} %`, done ? 100 : task.progress, label);
    if (done && task.endpoint === "/index") loadCollections();
    if (done) await showResult(task, { at });
    else showError($("analyze-error"), new Error(
      task.error ? `${task.error.type}: ${task.error.message}` : "the task failed"));
  }, (err) => showError($("analyze-error"), err));
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

/** Show a streamed state in the task's row (the row is rebuilt when the task ends). */
function updateRow(id, state) {
  const row = findRow(id);
  if (!row || state.status === "deleted") return;
  const progress = state.status === "completed" ? 100 : state.progress || 0;
  const badge = row.querySelector(".badge");
  badge.className = `badge s-${state.status}`;
  badge.textContent = state.status;
  row.querySelector("td.num").textContent = `${progress} %`;
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
      stopWatching();
      $("job").hidden = true;
      clearResult();
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
      h("p", {}, String(hit.text || "").trim()),
      hit.task_id ? h("button", {
        type: "button", class: "secondary open-hit",
        "aria-label": `Open ${hit.media_id} at ${span(hit.start, hit.end)}`,
        onclick: () => {
          openTask(hit.task_id, { at: hit.start });
          $("transcribe").scrollIntoView({ block: "start" });
        },
      }, "Play this moment") : null)));
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
  dropZone($("drop-zone"), sendFiles);
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
