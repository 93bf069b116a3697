// The API: fetch with the key, uploads with progress, and following a task live
// (Server-Sent Events through a signed URL, polling where streaming is unavailable).

import { h, sleep } from "./dom.js";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const NETWORK_ERROR = "could not reach the API (network error)";
const POLL_MS = 700;
const SILENT_STREAM_MS = 5000; // no first message by then: a proxy buffers, so poll
const FINAL = new Set(["completed", "failed", "deleted"]);
let apiKey = "";

export const setApiKey = (key) => { apiKey = key; };
export const hasApiKey = () => apiKey !== "";

function apiErrorFrom(status, statusText, body) {
  const ok = body && typeof body === "object";
  const message = ok && typeof body.message === "string" ? body.message
    : `${status} ${statusText || "error"}`;
  return new ApiError(status, ok ? body.error : "http_error", message, ok ? body.details : null);
}

/** fetch with the key; resolves to parsed JSON (or the Response with raw), throws ApiError. */
export async function api(path, { method = "GET", json, raw = false } = {}) {
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
export function upload(path, form, onProgress) {
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

const links = new Map(); // task id -> signed URLs, until shortly before they expire

/** Signed URLs for a task's media and stream (null where the API has signing off). */
export async function taskLinks(id) {
  const cached = links.get(id);
  if (cached && cached.expires_at * 1000 > Date.now() + 60_000) return cached;
  try {
    const fresh = await api(`/tasks/${encodeURIComponent(id)}/links`, { method: "POST" });
    links.set(id, fresh);
    return fresh;
  } catch (err) {
    if (err.status === 503) return null;
    throw err;
  }
}

/**
 * Follow a task: onState({status, progress, error}, final) on every change, the last
 * call with final = true. Returns a function that stops following.
 */
export function follow(id, onState, onError = () => {}) {
  let stopped = false;
  let source = null;
  const stop = () => {
    stopped = true;
    if (source) source.close();
  };
  const emit = (state) => {
    if (stopped) return;
    const final = FINAL.has(state.status);
    if (final) stop();
    onState(state, final);
  };
  const poll = async () => {
    if (source) source.close();
    let delay = POLL_MS;
    while (!stopped) {
      try {
        const task = await api(`/tasks/${encodeURIComponent(id)}`);
        emit({ status: task.status, progress: task.progress, error: task.error });
        delay = POLL_MS;
      } catch (err) {
        if (stopped) return;
        onError(err);
        if (err.status === 404) emit({ status: "deleted", progress: 0, error: null });
        if (err.status === 401 || err.status === 404) return;
        delay = Math.min(delay * 2, 8000); // the API or its database is down: back off
      }
      await sleep(delay);
    }
  };
  (async () => {
    let signed = null;
    try {
      signed = typeof EventSource === "function" ? await taskLinks(id) : null;
    } catch {
      signed = null;
    }
    if (stopped) return;
    if (!signed) {
      poll();
      return;
    }
    let heard = false;
    source = new EventSource(signed.stream_url);
    const silent = setTimeout(() => { if (!heard && !stopped) poll(); }, SILENT_STREAM_MS);
    const onMessage = (event) => {
      heard = true;
      clearTimeout(silent);
      emit(JSON.parse(event.data));
    };
    source.addEventListener("progress", onMessage);
    source.addEventListener("end", onMessage);
    source.addEventListener("error", () => {
      // EventSource reconnects by itself (with Last-Event-ID); once it gives up
      // (a refused or expired URL), fall back to polling.
      if (!stopped && source.readyState === EventSource.CLOSED) {
        clearTimeout(silent);
        poll();
      }
    });
  })();
  return stop;
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

export function showError(el, err) {
  if (!err) {
    el.replaceChildren();
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  const lines = err instanceof ApiError ? flattenDetails(err.details) : [];
  el.replaceChildren(h("strong", {}, err.status ? `Error ${err.status}: ` : "Error: "), message);
  if (lines.length) el.append(h("ul", {}, lines.map((line) => h("li", {}, line))));
}
