// Transcribe: submit files (dropped or picked) or a URL with the form's options, then
// follow the opened task live (stream, else polling) and show its workspace.

import { api, follow, hasApiKey, showError } from "./api.js";
import { $, mediaLabel, shortId } from "./dom.js";
import { analyzeOptions, initOptions } from "./options.js";
import { loadCollections } from "./search.js";
import { loadCounts, loadTasks, updateRow } from "./tasks.js";
import { dropZone, submitFiles } from "./uploads.js";
import { clearResult, showResult } from "./workspace.js";

const STATUS_TEXT = {
  created: "Queued",
  assigned: "Queued",
  running: "Running",
  not_finished: "Interrupted, will be retried",
  completed: "Done",
  failed: "Failed",
  deleted: "Deleted",
};

let watchedId = null;
let stopWatch = () => {};
let announced = "";

export function stopWatching() {
  stopWatch();
  stopWatch = () => {};
  watchedId = null;
}

/** The task ``id`` is gone: stop showing it if it is the one open. */
export function closeTask(id) {
  if (watchedId !== id) return;
  stopWatching();
  $("job").hidden = true;
  clearResult();
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
export function openTask(id, { at } = {}) {
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

/** Wire the source choice, the form, the options and the drop zone. */
export function initTranscribe() {
  for (const radio of document.querySelectorAll("input[name=source]")) {
    radio.addEventListener("change", () => setSource(radio.value));
  }
  $("analyze-form").addEventListener("submit", submitAnalyze);
  initOptions($("analyze-form"));
  dropZone($("drop-zone"), sendFiles);
}
