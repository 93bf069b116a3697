"""Request options around the model: voice activity detection, prompt and hotwords,
speaker diarization (fields shared by every transcription request schema)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.prompting import PROMPT_TOKEN_LIMIT, count_prompt_tokens, fold_prompt

MAX_SPEAKERS = 20
MILLISECONDS = validate.Range(min=0, max=60000)


def speech_fields(strict: bool, boolean: type[fields.Boolean]) -> dict[str, fields.Field]:
    """VAD, prompt and diarization options (``boolean``: the strict or lenient kind)."""

    def ms(default: int, doc: str) -> fields.Integer:
        return fields.Integer(strict=strict, validate=MILLISECONDS, load_default=None,
                              metadata={"description": f"{doc} (default {default})"})

    def speakers(doc: str) -> fields.Integer:
        return fields.Integer(strict=strict, validate=validate.Range(min=1, max=MAX_SPEAKERS),
                              load_default=None, metadata={"description": doc})

    return {
        "vad": boolean(load_default=True, metadata={
            "description": "decode only the speech Silero VAD finds (no text invented in "
                           "silence or noise); times stay on the original timeline"}),
        "vad_threshold": fields.Float(
            validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False),
            load_default=None,
            metadata={"description": "speech probability above which a frame is speech "
                                     "(default 0.5)"}),
        "vad_min_speech_ms": ms(250, "speech shorter than this is dropped"),
        "vad_min_silence_ms": ms(1000, "pauses shorter than this do not split speech"),
        "vad_speech_pad_ms": ms(400, "audio kept on each side of detected speech"),
        "prompt": fields.String(validate=validate.Length(max=4000), load_default=None, metadata={
            "description": "initial prompt Whisper conditions every window on (spelling, "
                           f"style, context); with hotwords at most {PROMPT_TOKEN_LIMIT} "
                           "tokens"}),
        "hotwords": fields.List(
            fields.String(validate=validate.Length(min=1, max=100)),
            validate=validate.Length(max=100), load_default=None,
            metadata={"description": "names and terms to favour, put in front of the prompt "
                                     "(as faster-whisper does)"}),
        "diarize": boolean(load_default=False, metadata={
            "description": "label each segment (and word) with its speaker"}),
        "num_speakers": speakers("exact number of speakers, when known"),
        "min_speakers": speakers("at least this many speakers"),
        "max_speakers": speakers("at most this many speakers"),
    }


class SpeechOptionsSchema(Schema):
    """Base of the transcription request schemas: checks across the speech options."""

    @validates_schema
    def check_speech_options(self, data, **_kwargs):
        text = fold_prompt(data.get("prompt"), data.get("hotwords"))
        tokens = count_prompt_tokens(text) if text else 0
        if tokens and tokens > PROMPT_TOKEN_LIMIT:
            field = "prompt" if data.get("prompt") else "hotwords"
            raise ValidationError(
                f"prompt and hotwords take {tokens} tokens; Whisper's prompt budget is "
                f"{PROMPT_TOKEN_LIMIT}", field)
        low, high = data.get("min_speakers"), data.get("max_speakers")
        if low is not None and high is not None and low > high:
            raise ValidationError("min_speakers is more than max_speakers", "min_speakers")
        if data.get("num_speakers") is not None and (low is not None or high is not None):
            raise ValidationError("give num_speakers or min_speakers/max_speakers, not both",
                                  "num_speakers")
