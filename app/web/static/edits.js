// Corrections kept with the task (PATCH /tasks/<id>): a segment's text edited in place,
// and the speakers' names. Saved edits show in every download.

import { api, showError } from "./api.js";
import { h, paintSpeaker } from "./dom.js";

const patch = (task, json) =>
  api(`/tasks/${encodeURIComponent(task.id)}`, { method: "PATCH", json });

/** An "Edit" button that turns the segment's text into a text box with Save and Cancel. */
export function editButton(task, index, item, text, onSaved) {
  const button = h("button", {
    type: "button", class: "secondary edit", "aria-label": `Edit segment ${index + 1}`,
    onclick: (event) => {
      event.stopPropagation();
      const holder = item.querySelector(".seg-text");
      const box = h("textarea", { class: "seg-edit", rows: "2", maxlength: "5000",
        "aria-label": `Text of segment ${index + 1}` });
      box.value = text;
      const error = h("p", { class: "error", role: "alert" });
      const form = h("form", { class: "seg-form", onsubmit: async (submit) => {
        submit.preventDefault();
        try {
          await patch(task, { segments: [{ index, text: box.value.trim() }] });
          onSaved();
        } catch (err) {
          showError(error, err);
        }
      } }, box, h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "secondary", onclick: () => form.replaceWith(holder) },
        "Cancel"), error);
      form.addEventListener("click", (e) => e.stopPropagation());
      holder.replaceWith(form);
      box.focus();
    },
  }, "Edit");
  return button;
}

/** Name the speakers: one field per label, saved together. */
export function speakerForm(task, labels, names, onSaved) {
  if (!labels.length) return null;
  const error = h("p", { class: "error", role: "alert" });
  const inputs = labels.map((label, i) => {
    const input = h("input", { id: `speaker-${i}`, maxlength: "200", value: names[label] || "",
      placeholder: label, "data-label": label });
    return [paintSpeaker(h("label", { for: `speaker-${i}`, class: "speaker-label" }, label),
      label), input];
  });
  return h("form", { id: "speakers", class: "row", onsubmit: async (event) => {
    event.preventDefault();
    const speakerNames = Object.fromEntries(inputs.map(([, input]) =>
      [input.dataset.label, input.value.trim()]));
    try {
      await patch(task, { speaker_names: speakerNames });
      onSaved();
    } catch (err) {
      showError(error, err);
    }
  } }, h("strong", {}, "Speakers"), inputs.flat(),
  h("button", { type: "submit", class: "secondary" }, "Save names"), error);
}
