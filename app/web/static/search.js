// Search: the key's collections in a list, a query's hits with their times and scores;
// each hit opens its task's transcript and player at that moment.

import { api, showError } from "./api.js";
import { $, h, plural, span } from "./dom.js";

let openAt = () => {};

export async function loadCollections() {
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

function hitItem(hit) {
  return h("li", {},
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
        openAt(hit.task_id, hit.start);
        $("transcribe").scrollIntoView({ block: "start" });
      },
    }, "Play this moment") : null);
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
    results.replaceChildren(...body.results.map(hitItem));
  } catch (err) {
    $("search-note").textContent = "";
    results.replaceChildren();
    showError($("search-error"), err);
  }
}

/** Wire the search form; ``open(taskId, seconds)`` shows a hit's task at its moment. */
export function initSearch(open) {
  openAt = open;
  $("search-form").addEventListener("submit", submitSearch);
}
