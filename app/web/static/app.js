// Hark's web page: ES modules, no framework, no build step. This one wires the sections
// together: the key (keys.js), submitting and the opened task (transcribe.js, options.js,
// uploads.js, workspace.js), the tasks table (tasks.js) and search (search.js). Every
// string from the API reaches the page as text (see dom.js).

import { $ } from "./dom.js";
import { checkHealth, initKeys } from "./keys.js";
import { initSearch, loadCollections } from "./search.js";
import { configureTasks, initTasks, loadTasks, renderCounts } from "./tasks.js";
import { closeTask, initTranscribe, openTask, stopWatching } from "./transcribe.js";
import { stopAll } from "./uploads.js";
import { clearResult } from "./workspace.js";

/** Empty every section that shows the key's data. */
function clearPage() {
  stopWatching();
  stopAll();
  clearResult();
  for (const id of ["job", "tasks-empty", "load-more"]) $(id).hidden = true;
  for (const id of ["task-rows", "results", "collection-select", "analyze-error", "tasks-error",
    "search-error", "task-counts", "search-note"]) $(id).replaceChildren();
}

function init() {
  configureTasks({ open: (id) => openTask(id), deleted: closeTask, listed: loadCollections });
  initTranscribe();
  initTasks();
  initSearch((id, at) => openTask(id, { at }));
  checkHealth();
  initKeys({
    accepted: (counts) => {
      renderCounts(counts);
      loadTasks(true);
    },
    forgotten: clearPage,
  });
}

init();
