// The options sent with each submission: model, language, word timestamps, and the
// speech options (voice activity detection, prompt, hotwords, speaker diarization).
// The API checks them; its 400 names the field.

/** "Siobhan Nguyen, Qdrant" -> ["Siobhan Nguyen", "Qdrant"] (blanks dropped). */
export const hotwordList = (text) =>
  String(text).split(",").map((word) => word.trim()).filter(Boolean);

/** The request's options from the form, in JSON types (booleans, a number, a list). */
export function analyzeOptions(form) {
  const options = {
    model: form.model.value,
    word_timestamps: form.word_timestamps.checked,
    vad: form.vad.checked,
    diarize: form.diarize.checked,
  };
  const language = form.language.value.trim();
  if (language) options.language = language;
  const prompt = form.prompt.value.trim();
  if (prompt) options.prompt = prompt;
  const hotwords = hotwordList(form.hotwords.value);
  if (hotwords.length) options.hotwords = hotwords;
  const speakers = form.num_speakers.value.trim();
  if (options.diarize && speakers) options.num_speakers = Number(speakers);
  return options;
}

/** The number of speakers only means something with diarization on. */
export function initOptions(form) {
  const sync = () => {
    form.num_speakers.disabled = !form.diarize.checked;
  };
  form.diarize.addEventListener("change", sync);
  sync();
}
