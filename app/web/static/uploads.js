// Many files at once: dropped or picked, each uploaded as its own task with its own row,
// live progress bar (followed through the task's event stream), error and retry.

import { api, follow, showError, upload } from "./api.js";
import { $, h, shortId } from "./dom.js";

const LABEL = { created: "Queued", assigned: "Queued", running: "Transcribing",
  not_finished: "Interrupted, will be retried", completed: "Done", failed: "Failed",
  deleted: "Deleted" };
const rows = new Map(); // task id -> {el, stop}

function setRow(row, { text, percent, error }) {
  row.status.textContent = text;
  row.bar.value = Math.max(0, Math.min(100, Math.round(percent || 0)));
  row.bar.setAttribute("aria-valuetext", `${text}, ${row.bar.value} %`);
  showError(row.error, error || null);
}

function makeRow(file) {
  const status = h("span", { class: "up-status" }, "Waiting…");
  const bar = h("progress", { max: "100", value: "0", "aria-label": `Progress of ${file.name}` });
  const error = h("p", { class: "error", role: "alert" });
  const actions = h("span", { class: "up-actions" });
  const el = h("li", { class: "upload", "data-name": file.name },
    h("span", { class: "up-name" }, file.name), status, actions, bar, error);
  $("uploads").append(el);
  $("uploads").hidden = false;
  return { el, status, bar, error, actions };
}

function track(row, id, hooks) {
  row.el.dataset.task = id;
  const previous = rows.get(id);
  if (previous) previous.stop();
  row.actions.replaceChildren(h("button", {
    type: "button", class: "secondary", "aria-label": `Open task ${id}`,
    onclick: () => hooks.open(id),
  }, "Open"));
  const stop = follow(id, (state, final) => {
    const done = state.status === "completed";
    const error = state.error ? new Error(`${state.error.type}: ${state.error.message}`) : null;
    setRow(row, { text: `${LABEL[state.status] || state.status} (task ${shortId(id)})`,
      percent: done ? 100 : state.progress, error });
    row.el.dataset.status = state.status;
    hooks.changed(id, state, final);
    if (final && state.status === "failed") {
      row.actions.append(h("button", {
        type: "button", "aria-label": `Retry task ${id}`,
        onclick: async () => {
          try {
            await api(`/tasks/${encodeURIComponent(id)}/retry`, { method: "POST" });
            track(row, id, hooks);
          } catch (err) {
            showError(row.error, err);
          }
        },
      }, "Retry"));
    }
  }, (err) => showError(row.error, err));
  rows.set(id, { el: row.el, stop });
}

/**
 * Upload ``files`` one after the other (each becomes a task as soon as it is stored);
 * resolves to the task ids. ``hooks``: open(id), changed(id, state, final).
 */
export async function submitFiles(files, options, hooks) {
  const ids = [];
  for (const file of files) {
    const row = makeRow(file);
    const body = new FormData();
    body.append("file", file, file.name);
    for (const [name, value] of Object.entries(options)) {
      for (const item of [].concat(value)) body.append(name, String(item)); // lists repeat
    }
    try {
      setRow(row, { text: "Uploading…", percent: 0 });
      const submitted = await upload("/analyze?defer=true", body, (fraction) => {
        setRow(row, { text: `Uploading… ${Math.round(fraction * 100)} %`,
          percent: fraction * 100 });
      });
      ids.push(submitted.task_id);
      track(row, submitted.task_id, hooks);
      if (ids.length === 1) hooks.first(submitted.task_id);
    } catch (err) {
      setRow(row, { text: "Not submitted", percent: 0, error: err });
    }
  }
  return ids;
}

/** Wire a drop zone: dropped files go to ``onFiles``; the zone is the file input's label. */
export function dropZone(zone, onFiles) {
  const over = (event) => {
    event.preventDefault();
    zone.classList.add("over");
  };
  zone.addEventListener("dragenter", over);
  zone.addEventListener("dragover", over);
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = [...((event.dataTransfer && event.dataTransfer.files) || [])];
    if (files.length) onFiles(files);
  });
}

export function stopAll() {
  for (const { stop } of rows.values()) stop();
  rows.clear();
  $("uploads").replaceChildren();
  $("uploads").hidden = true;
}
