// The transcript workspace: the task's media in a player above its transcript; the
// segment and word being played are highlighted and kept in view; a click (or Enter
// on a segment's time) seeks there; downloads in every format.

import { api, taskLinks } from "./api.js";
import { $, clock, h, mediaLabel, paintSpeaker, shortId, span } from "./dom.js";
import { editButton, speakerForm } from "./edits.js";

const FORMATS = ["txt", "srt", "vtt", "json"];
const VIDEO = /\.(mp4|m4v|mov|webm|mkv|ogv)$/i;
let downloadUrls = [];
let shown = null; // {task, segments: [{start, end, el, words: [{start, end, el}]}]}
let generation = 0;

export function revokeDownloads() {
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
}

/** Index of the last item starting at or before t (-1 if none). */
function locate(items, t) {
  let lo = 0;
  let hi = items.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].start <= t + 1e-3) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

function mark(list, index, previous) {
  if (previous === index) return false;
  if (previous >= 0 && list[previous]) {
    list[previous].el.classList.remove("current");
    list[previous].el.removeAttribute("aria-current");
  }
  if (index >= 0) {
    list[index].el.classList.add("current");
    list[index].el.setAttribute("aria-current", "true");
  }
  return true;
}

let currentSegment = -1;
let currentWord = -1;
let currentWords = [];

/** Highlight what the player is at; bring the segment into view when it changes. */
function follow(player) {
  if (!shown) return;
  const t = player.currentTime;
  const index = locate(shown.segments, t);
  if (mark(shown.segments, index, currentSegment)) {
    if (currentWord >= 0 && currentWords[currentWord]) mark(currentWords, -1, currentWord);
    currentSegment = index;
    currentWord = -1;
    currentWords = index >= 0 ? shown.segments[index].words : [];
    if (index >= 0) shown.segments[index].el.scrollIntoView({ block: "nearest" });
  }
  const word = locate(currentWords, t);
  const inside = word >= 0 && t <= currentWords[word].end + 0.05 ? word : -1;
  if (mark(currentWords, inside, currentWord)) currentWord = inside;
}

function seek(seconds) {
  const player = $("player");
  if (!player || !Number.isFinite(seconds)) return;
  player.currentTime = seconds + 0.01;
  follow(player);
}

function speakerChip(segment, names) {
  if (!segment.speaker) return null;
  const label = String(segment.speaker);
  return h("span", { class: "speaker", title: label },
    segment.speaker_name || names[label] || label);
}

function segmentItem(segment, index, names, task, rerender) {
  const words = Array.isArray(segment.words) ? segment.words : [];
  const wordItems = [];
  const text = words.length
    ? words.flatMap((w, i) => {
      const el = h("span", {
        class: "word", title: span(w.start, w.end), "data-start": w.start,
        onclick: (event) => {
          event.stopPropagation();
          seek(w.start);
        },
      }, String(w.word).trim());
      wordItems.push({ start: w.start, end: w.end, el });
      return [i ? " " : null, el];
    })
    : String(segment.text || "").trim();
  const el = h("li", { "data-start": segment.start, "data-index": index },
    h("button", {
      type: "button", class: "ts", "aria-label": `Play from ${clock(segment.start)}`,
      onclick: () => seek(segment.start),
      onkeydown: (event) => moveFocus(event, index),
    }, span(segment.start, segment.end)),
    speakerChip(segment, names), " ",
    h("span", { class: "seg-text", onclick: () => seek(segment.start) }, text));
  if (segment.speaker) paintSpeaker(el, segment.speaker);
  el.append(editButton(task, index, el, String(segment.text || "").trim(), rerender));
  return { start: segment.start, end: segment.end, el, words: wordItems };
}

/** Up and Down move between segments' time buttons; Home and End jump to the ends. */
function moveFocus(event, index) {
  const moves = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0,
    End: shown ? shown.segments.length - 1 : 0 };
  if (!(event.key in moves) || !shown) return;
  const target = shown.segments[moves[event.key]];
  if (!target) return;
  event.preventDefault();
  target.el.querySelector("button.ts").focus();
}

async function attachPlayer(task, at) {
  const box = $("player-box");
  const token = generation;
  box.replaceChildren();
  const note = $("player-note");
  note.textContent = "";
  let signed;
  try {
    signed = await taskLinks(task.id);
  } catch (err) {
    note.textContent = `The media cannot be played: ${err.message}.`;
    return;
  }
  if (token !== generation) return;
  if (!signed) {
    note.textContent = "Playback needs URL_SIGNING_SECRET set on the API.";
    return;
  }
  const tag = VIDEO.test(mediaLabel(task)) ? "video" : "audio";
  const player = h(tag, {
    id: "player", controls: true, preload: "metadata", src: signed.media_url,
    "aria-label": `Media of task ${shortId(task.id)}`,
  });
  player.addEventListener("timeupdate", () => follow(player));
  player.addEventListener("seeked", () => follow(player));
  player.addEventListener("play", () => {
    const frame = () => {
      follow(player);
      if (!player.paused && player.isConnected) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  player.addEventListener("error", () => {
    note.textContent = "The media is no longer stored (retention) or cannot be played here.";
  });
  if (typeof at === "number") {
    player.addEventListener("loadedmetadata", () => seek(at), { once: true });
  }
  box.append(player);
}

/** Show a finished task: meta, player, transcript, downloads. ``at``: seek there. */
export async function showResult(task, { at } = {}) {
  const token = ++generation;
  const result = task.endpoint === "/index" && task.result && task.result.transcript
    ? task.result.transcript : task.result || {};
  const segments = Array.isArray(result.segments) ? result.segments : null;
  revokeDownloads();
  shown = null;
  currentSegment = -1;
  currentWord = -1;
  currentWords = [];
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
  $("player-box").replaceChildren();
  $("player-note").textContent = "";
  $("speakers-box").replaceChildren();
  if (segments) {
    const fixed = await corrected(task, result);
    if (token !== generation) return;
    const names = fixed.speaker_names || {};
    const rerender = () => {
      const player = $("player");
      showResult(task, { at: player ? player.currentTime : undefined });
    };
    const items = fixed.segments.map((segment, i) => segmentItem(segment, i, names, task,
      rerender));
    const labels = [...new Set(fixed.segments.map((seg) => seg.speaker).filter(Boolean))];
    const form = speakerForm(task, labels.map(String), names, rerender);
    if (form) $("speakers-box").append(form);
    shown = { task, segments: items };
    list.replaceChildren(...items.map((item) => item.el));
    if (!segments.length) list.replaceChildren(h("li", { class: "note" }, "No speech found."));
    attachPlayer(task, at);
  } else {
    list.replaceChildren(h("li", {}, h("pre", {}, JSON.stringify(task.result, null, 2))));
  }
  $("transcript").hidden = false;
  if (typeof at === "number" && shown) {
    const index = Math.max(0, locate(shown.segments, at));
    if (shown.segments[index]) {
      mark(shown.segments, index, -1);
      currentSegment = index;
      currentWords = shown.segments[index].words;
      shown.segments[index].el.scrollIntoView({ block: "center" });
    }
  }
  await showDownloads(task, Boolean(segments), token);
}

/** The transcript with the task's corrections applied (as every download has it). */
async function corrected(task, result) {
  try {
    const fixed = await api(`/tasks/${encodeURIComponent(task.id)}/transcript?format=json`);
    if (Array.isArray(fixed.segments)) return fixed;
  } catch {
    // not a transcription route's task: show the result as stored
  }
  return result;
}

async function showDownloads(task, transcribed, token) {
  const downloads = $("downloads");
  downloads.replaceChildren();
  if (!transcribed || !["/analyze", "/index"].includes(task.endpoint)) return;
  downloads.append("Download: ");
  const base = (mediaLabel(task).split("/").pop() || "").replace(/\.[^.]*$/, "")
    || `transcript-${shortId(task.id)}`;
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
  if (token === generation) downloads.append(...links);
}

/** Forget what is shown (a new task is being opened, or the key was forgotten). */
export function clearResult() {
  generation += 1;
  shown = null;
  revokeDownloads();
  $("player-box").replaceChildren();
  $("transcript").hidden = true;
}
