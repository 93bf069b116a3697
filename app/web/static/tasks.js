// The tasks table: counts by status, newest first, paged by cursor, filtered by status;
// each row opens, retries or deletes its task.

import { api, showError } from "./api.js";
import { $, h, mediaLabel, plural, shortId, when } from "./dom.js";

const PAGE_SIZE = 20;
const STATUSES = ["created", "assigned", "running", "completed", "failed", "not_finished"];
const RETRYABLE = new Set(["failed", "not_finished"]);

let nextCursor = null;
let listing = 0;
// open(id): show the task; deleted(id): it is gone; listed(): a fresh page was loaded.
let hooks = { open: () => {}, deleted: () => {}, listed: () => {} };

/** Set what a row's actions do beyond the table (see ``hooks`` above). */
export function configureTasks(given) {
  hooks = { ...hooks, ...given };
}

export function renderCounts(counts) {
  const parts = STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  $("task-counts").textContent = `${plural(counts.total || 0, "task")}`
    + (parts.length ? `: ${parts.join(" · ")}` : "");
}

export async function loadCounts() {
  try {
    renderCounts(await api("/tasks/count"));
  } catch (err) {
    showError($("tasks-error"), err);
  }
}

function stopped(action) {
  return (event) => {
    event.stopPropagation();
    action();
  };
}

function taskRow(task) {
  const progress = task.status === "completed" ? 100 : task.progress || 0;
  const open = () => {
    hooks.open(task.id);
    $("transcribe").scrollIntoView({ behavior: "smooth", block: "start" });
  };
  const actions = h("td", { class: "actions" });
  if (RETRYABLE.has(task.status)) {
    actions.append(h("button", {
      type: "button", class: "secondary", "aria-label": `Retry task ${task.id}`,
      onclick: stopped(() => retryTask(task.id)),
    }, "Retry"));
  }
  actions.append(h("button", {
    type: "button", class: "danger", "aria-label": `Delete task ${task.id}`,
    onclick: stopped(() => deleteTask(task.id)),
  }, "Delete"));
  const state = `${task.status}:${progress}`;
  return h("tr", { "data-id": task.id, "data-state": state, onclick: open },
    h("td", {}, h("button", {
      type: "button", class: "link", title: task.id, "aria-label": `Open task ${task.id}`,
      onclick: stopped(open),
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
export function updateRow(id, state) {
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

/** The first page again (``reset``), or the next one. */
export async function loadTasks(reset) {
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
  if (reset) hooks.listed();
}

async function retryTask(id) {
  try {
    const task = await api(`/tasks/${encodeURIComponent(id)}/retry`, { method: "POST" });
    replaceTaskRow(task);
    hooks.open(id);
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
    hooks.deleted(id);
    loadCounts();
  } catch (err) {
    showError($("tasks-error"), err);
  }
}

/** Wire the filter, Refresh and Load more. */
export function initTasks() {
  $("tasks-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadTasks(true);
  });
  $("status-filter").addEventListener("change", () => loadTasks(true));
  $("load-more").addEventListener("click", () => loadTasks(false));
}
