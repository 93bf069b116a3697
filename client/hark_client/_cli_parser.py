"""The ``hark`` command line's arguments (the commands themselves live in ``cli``)."""

from __future__ import annotations

import argparse
from typing import Any

from ._config import API_KEY_ENV, DEFAULT_URL, URL_ENV
from ._version import __version__
from .models import SEARCH_MODES, TaskStatus

EVENTS = ("task.started", "task.completed", "task.failed", "task.not_finished")
FORMATS = ("txt", "srt", "vtt", "json")


def _add_globals(parser: argparse.ArgumentParser, top: bool) -> None:
    """The connection and output options work before or after the command."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument("--url", default=default(None),
                       help=f"API base URL (${URL_ENV}, default {DEFAULT_URL})")
    keys = group.add_mutually_exclusive_group()
    keys.add_argument("--api-key", default=default(None),
                      help=f"API key (${API_KEY_ENV}; prefer --api-key-file, which keeps it "
                           "out of the process list and shell history)")
    keys.add_argument("--api-key-file", default=default(None), metavar="PATH",
                      help="read the API key from this file (first line)")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="print the server's JSON instead of tables")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="print only ids (one per line); no tables, progress or hints")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _bounded(kind: type, low: float, high: float, exclusive: bool = False) -> Any:
    """An argparse type: a ``kind`` number within [low, high] (or (low, high))."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        inside = low < value < high if exclusive else low <= value <= high
        if not inside:
            bounds = f"between {low:g} and {high:g}" + (" (exclusive)" if exclusive else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}")
        return value

    return parse


def _speech_args(p: argparse.ArgumentParser) -> None:
    """Voice activity detection, prompt and hotwords, speaker diarization."""
    group = p.add_argument_group("speech options")
    group.add_argument("--no-vad", dest="vad", action="store_const", const=False,
                       help="decode the whole file, not only the speech voice activity "
                            "detection finds (VAD is on by default)")
    ms = _bounded(int, 0, 60000)
    group.add_argument("--vad-threshold", type=_bounded(float, 0, 1, exclusive=True),
                       metavar="P", help="speech probability from which a frame is speech "
                                         "(0-1, default 0.5)")
    group.add_argument("--vad-min-speech-ms", type=ms, metavar="MS",
                       help="drop speech shorter than this (default 250)")
    group.add_argument("--vad-min-silence-ms", type=ms, metavar="MS",
                       help="pauses shorter than this do not split speech (default 1000)")
    group.add_argument("--vad-speech-pad-ms", type=ms, metavar="MS",
                       help="audio kept on each side of detected speech (default 400)")
    group.add_argument("--prompt", metavar="TEXT",
                       help="text Whisper is conditioned on (spellings, style, context)")
    group.add_argument("--hotword", action="append", metavar="TERM",
                       help="a name or term to favour (repeatable)")
    group.add_argument("--diarize", action="store_true",
                       help="label each segment (and word) with its speaker")
    speakers = _bounded(int, 1, 20)
    group.add_argument("--speakers", type=speakers, metavar="N",
                       help="exactly N speakers (1-20; implies --diarize)")
    group.add_argument("--min-speakers", type=speakers, metavar="N",
                       help="at least N speakers (implies --diarize)")
    group.add_argument("--max-speakers", type=speakers, metavar="N",
                       help="at most N speakers (implies --diarize)")


def _wait_args(parser: argparse.ArgumentParser, optional: bool = True) -> None:
    if optional:
        parser.add_argument("--wait", action="store_true",
                            help="wait for the task to finish, showing its progress")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up waiting after this many seconds (the task keeps running)")


def _media_args(p: argparse.ArgumentParser) -> None:
    """What /analyze and /index both take."""
    p.add_argument("source", metavar="FILE_OR_URL",
                   help="a media file, an http(s) URL the server fetches, or - for stdin")
    p.add_argument("--filename", help="the name the server records for the media")
    p.add_argument("--model", help="transcription model (see `hark models`)")
    p.add_argument("--language", help="spoken language code, e.g. en; detected when omitted")
    p.add_argument("--translate", action="store_true", help="translate the speech into English")
    p.add_argument("--words", action="store_true", help="word-level timestamps")
    p.add_argument("--priority", type=int, choices=range(10), metavar="0-9",
                   help="higher runs sooner (default 0)")
    p.add_argument("--device", choices=("cpu", "gpu"), help="run on a worker of this device")
    p.add_argument("--queue", help="run on workers consuming this queue")
    p.add_argument("--webhook", metavar="URL", help="POST the task's events to this URL")
    p.add_argument("--webhook-event", action="append", choices=EVENTS, metavar="EVENT",
                   help=f"an event for --webhook (repeatable; default all: {', '.join(EVENTS)})")
    _speech_args(p)
    _wait_args(p)


def _listing_args(p: argparse.ArgumentParser, limit: int, cursor: bool = True) -> None:
    p.add_argument("--limit", type=_positive, default=limit,
                   help=f"show at most this many (default {limit})")
    p.add_argument("--all", action="store_true", help="show every item, fetching page by page")
    p.add_argument("--per-page", type=_positive, metavar="N",
                   help="items fetched per request (default: --limit, at most 100)")
    if cursor:
        p.add_argument("--cursor", help="start after this point (printed when there is more)")


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=SEARCH_MODES,
                   help="semantic: by meaning; keyword: by words (all must occur, "
                        "\"quoted phrase\", or, -word); hybrid: both, fused by reciprocal "
                        "rank fusion (the server's default)")
    p.add_argument("--top-k", type=_positive, default=10, metavar="N",
                   help="how many passages, best first (at most 100; default 10)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hark", description="Hark media-analysis API client.")
    parser.add_argument("--version", action="version", version=f"hark-client {__version__}")
    _add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(sub: Any, name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, **kw)
        _add_globals(p, top=False)
        return p

    def takes(p: argparse.ArgumentParser, *names: tuple[str, str]) -> argparse.ArgumentParser:
        for dest, text in names:
            p.add_argument(dest, metavar=dest.upper(), help=text)
        return p

    task_id = ("task_id", "the task's id")
    coll_id = ("collection_id", "the collection's id")
    hook_id = ("webhook_id", "the webhook's id (deliveries, redeliver: `callbacks` for "
                             "the one-off callbacks)")

    command(commands, "health", "check that the API, database and broker are up")
    command(commands, "me", "who the API key belongs to, and its limits")
    command(commands, "models", "transcription models the platform can run")
    command(commands, "workers", "online workers (admin keys)")
    p = command(commands, "analyze", "transcribe a media file or URL")
    _media_args(p)
    p.add_argument("--format", choices=FORMATS, default="txt",
                   help="transcript format printed with --wait (default txt)")
    p = command(commands, "index", "transcribe media into a collection for search")
    _media_args(p)
    p.add_argument("--collection", required=True, help="the collection to index into")
    p.add_argument("--media-id", help="id of the media in the collection (default: generated)")
    p.add_argument("--reindex", action="store_true", help="replace it if already indexed")

    tasks = command(commands, "tasks", "inspect and manage tasks")
    actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "count", "tasks per status")
    p = command(actions, "list", "tasks, newest first")
    p.add_argument("--status", choices=[s.value for s in TaskStatus], help="only this status")
    _listing_args(p, limit=20)
    for name, text in (("get", "show a task"), ("events", "a task's audit trail"),
                       ("delete", "delete (cancel) a task"),
                       ("retry", "run a failed task again"), ("wait", "wait for a task")):
        p = takes(command(actions, name, text), task_id)
        if name == "wait":
            _wait_args(p, optional=False)
    p = takes(command(actions, "transcript", "a finished task's transcript"), task_id)
    p.add_argument("--format", choices=FORMATS, default="txt", help="default txt")

    colls = command(commands, "collections", "manage search collections")
    actions = colls.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "list", "all collections")
    p.add_argument("--per-page", type=_positive, default=100, metavar="N",
                   help="collections fetched per request (default 100)")
    p = takes(command(actions, "create", "create a collection"), coll_id)
    p.add_argument("--name", required=True, help="a display name")
    p.add_argument("--description", help="what the collection holds")
    p = takes(command(actions, "update", "rename or describe a collection"), coll_id)
    p.add_argument("--name", help="a new display name")
    describe = p.add_mutually_exclusive_group()
    describe.add_argument("--description", help="a new description")
    describe.add_argument("--clear-description", action="store_true",
                          help="remove the description")
    for name, text in (("get", "show a collection"),
                       ("delete", "delete a collection and all its media")):
        takes(command(actions, name, text), coll_id)
    p = takes(command(actions, "media", "media indexed in a collection"), coll_id)
    p.add_argument("--per-page", type=_positive, default=100, metavar="N",
                   help="media fetched per request (default 100)")
    media_id = ("media_id", "the media's id in the collection")
    takes(command(actions, "get-media", "show indexed media with its segments"),
          coll_id, media_id)
    takes(command(actions, "delete-media", "remove media from a collection"), coll_id, media_id)
    p = takes(command(actions, "search", "search a collection by meaning and words"),
              coll_id, ("query", "what to look for, as one (quoted) argument"))
    _search_args(p)

    p = command(commands, "search", "search all your collections by meaning and words")
    p.add_argument("query", metavar="QUERY", help="what to look for, as one (quoted) argument")
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)  # refused: see cmd_search
    p.add_argument("--collection", action="append", metavar="ID", dest="collections",
                   help="search only this collection (repeatable; default: all of yours)")
    _search_args(p)

    hooks = command(commands, "webhooks", "manage webhook subscriptions")
    actions = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "list", "all webhooks")
    p = command(actions, "create", "subscribe a URL to task events")
    p.add_argument("url_arg", metavar="URL", help="where events are POSTed")
    p.add_argument("--event", action="append", choices=EVENTS, metavar="EVENT",
                   help=f"an event to send (repeatable; default all: {', '.join(EVENTS)})")
    p.add_argument("--description", help="a note on what the webhook is for")
    p = takes(command(actions, "update", "change a webhook"), hook_id)
    p.add_argument("--new-url", metavar="URL", help="deliver to this URL from now on")
    events = p.add_mutually_exclusive_group()
    events.add_argument("--event", action="append", choices=EVENTS, metavar="EVENT",
                        help="subscribe to these events only (repeatable)")
    events.add_argument("--all-events", action="store_true", help="subscribe to every event")
    p.add_argument("--description", help="a new description")
    enabled = p.add_mutually_exclusive_group()
    enabled.add_argument("--enable", dest="enabled", action="store_const", const=True,
                         help="re-enable (also after the server disabled it)")
    enabled.add_argument("--disable", dest="enabled", action="store_const", const=False,
                         help="stop deliveries")
    for name, text in (("get", "show a webhook"), ("delete", "delete a webhook")):
        takes(command(actions, name, text), hook_id)
    p = takes(command(actions, "rotate-secret", "issue a new signing secret"), hook_id)
    p.add_argument("--grace-seconds", type=int, metavar="N",
                   help="the old secret keeps signing this long (server default)")
    p = takes(command(actions, "deliveries", "the delivery log, newest first"), hook_id)
    _listing_args(p, limit=50)
    takes(command(actions, "redeliver", "send a delivery again"), hook_id,
          ("delivery_id", "the delivery's id (from `deliveries`)"))
    return parser
