"""The ``hark`` commands that submit and follow tasks, and the service commands.

Each takes the client and the parsed arguments and prints its answer: a table or
``key: value`` block, the server's JSON with ``--json``, or only ids with ``-q``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import _cli_output as out
from ._cli_progress import UploadProgress
from ._sync.client import Client
from .errors import NotFoundError
from .models import Page, SearchHit, TaskStatus

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
Command = Callable[[Client, argparse.Namespace], None]


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


def show(args: argparse.Namespace, value: Any, fields: Callable[[], list] | None = None,
         ident: Any = None) -> None:
    """``value`` as JSON, as its id (``-q``), or as ``key: value`` lines."""
    if args.json:
        return out.print_json(value)
    if args.quiet:
        return print(ident if ident is not None else getattr(value, "id", ""))
    if fields is not None:
        out.print_fields(fields())


def show_many(args: argparse.Namespace, items: list, headers: tuple[str, ...],
              row: Callable[[Any], Iterable[Any]], **table: Any) -> None:
    if args.json:
        return out.print_json(items)
    if args.quiet:
        return print("\n".join(str(getattr(i, "id", "")) for i in items)) if items else None
    out.print_table(headers, [list(row(i)) for i in items], **table)


def hint(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)


def paged(args: argparse.Namespace, fetch: Callable[[int, str | None], Page[Any]],
          what: str) -> list:
    """Items from ``fetch(per_page, cursor)`` pages: ``--limit`` of them, or ``--all``;
    says how to go on when there is more."""
    limit = None if args.all else args.limit
    per_page = args.per_page or min(limit or 100, 100)
    items: list = []
    cursor = args.cursor
    while limit is None or len(items) < limit:
        size = per_page if limit is None else min(per_page, limit - len(items))
        page = fetch(size, cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    if cursor and not args.all:
        hint(args, f"more {what}: add --cursor {cursor} (or --all)")
    return items


# -- submitting and waiting ------------------------------------------------------------------

def _media(source: str) -> dict[str, Any]:
    """``file=`` or ``url=`` for a FILE_OR_URL argument (``-`` reads standard input)."""
    if _URL.match(source):
        return {"url": source}
    if source == "-":
        return {"file": sys.stdin.buffer.read(), "filename": "stdin"}
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"no such file: {source}")
    return {"file": path}


def _speech(args: argparse.Namespace) -> dict[str, Any]:
    """The speech options of ``analyze``/``index`` (``--speakers`` and the bounds imply
    ``--diarize``)."""
    counts = {"num_speakers": args.speakers, "min_speakers": args.min_speakers,
              "max_speakers": args.max_speakers}
    bounds = args.min_speakers is not None or args.max_speakers is not None
    if args.speakers is not None and bounds:
        raise UsageError("give --speakers or --min-speakers/--max-speakers, not both")
    if None not in (args.min_speakers, args.max_speakers) \
            and args.min_speakers > args.max_speakers:
        raise UsageError("--min-speakers is more than --max-speakers")
    diarize = args.diarize or any(v is not None for v in counts.values())
    return {"vad": args.vad, "vad_threshold": args.vad_threshold,
            "vad_min_speech_ms": args.vad_min_speech_ms,
            "vad_min_silence_ms": args.vad_min_silence_ms,
            "vad_speech_pad_ms": args.vad_speech_pad_ms, "prompt": args.prompt,
            "hotwords": args.hotword, "diarize": True if diarize else None, **counts}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    media = _media(args.source)
    if args.filename:
        media["filename"] = args.filename
    uploading = "file" in media and not args.quiet
    return {**media, "model": args.model, "language": args.language,
            "task": "translate" if args.translate else None,
            "word_timestamps": True if args.words else None, "priority": args.priority,
            "device": args.device, "queue": args.queue, "webhook": args.webhook,
            "webhook_events": args.webhook_event, **_speech(args),
            "on_upload": UploadProgress(Path(args.source).name) if uploading else None}


def _follow(client: Client, args: argparse.Namespace, task_id: str) -> Any:
    """Wait for the task (polling, to show progress); Ctrl-C leaves it running."""
    args.waiting_for = task_id
    progress = None if args.quiet or args.json else args.progress
    try:
        return client.tasks.wait(task_id, timeout=args.timeout, on_progress=progress)
    finally:
        args.progress.done()


def _submitted(args: argparse.Namespace, task: Any) -> None:
    if args.json:
        return out.print_json(task)
    print(task.id)
    hint(args, f"submitted ({task.status}); follow it with: hark tasks wait {task.id}")


def cmd_analyze(client: Client, args: argparse.Namespace) -> None:
    task = client.analyze(**_options(args))
    if not args.wait:
        return _submitted(args, task)
    task = _follow(client, args, task.id)
    if args.quiet:
        return print(task.id)
    if args.json or args.format == "json":
        return out.print_json(task if args.json else task.result)
    try:
        text = client.transcript(task.id, args.format)
    except NotFoundError:  # a server without /transcript: the plain text is in the result
        if args.format != "txt" or task.transcript is None:
            raise
        text = (task.transcript.text or "") + "\n"
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_index(client: Client, args: argparse.Namespace) -> None:
    task = client.index(**_options(args), collection=args.collection, media_id=args.media_id,
                        reindex_if_exists=True if args.reindex else None)
    if not args.wait:
        return _submitted(args, task)
    task = _follow(client, args, task.id)
    show(args, task, lambda: out.task_fields(task))


# -- tasks -----------------------------------------------------------------------------------

def cmd_tasks(client: Client, args: argparse.Namespace) -> None:
    action = args.action
    if action == "count":
        counts = client.tasks.count()
        if args.json:
            return out.print_json(counts)
        rows = [(s.value, getattr(counts, s.value)) for s in TaskStatus]
        return out.print_table(("STATUS", "COUNT"), [*rows, ("total", counts.total)])
    if action == "list":
        tasks = paged(args, lambda n, c: client.tasks.page(per_page=n, status=args.status,
                                                           cursor=c), "tasks")
        return show_many(args, tasks, out.TASK_HEADERS, out.task_row)
    if action == "events":
        events = client.tasks.events(args.task_id)
        if args.json:
            return out.print_json(events)
        return out.print_table(("AT", "EVENT", "DETAILS"),
                               [(e.at, e.type, e.details) for e in events], max_width=80)
    if action == "transcript":
        text = client.transcript(args.task_id, args.format)
        return sys.stdout.write(text if text.endswith("\n") else text + "\n") and None
    if action == "wait":
        task = _follow(client, args, args.task_id)
    else:
        task = {"get": client.tasks.get, "delete": client.tasks.delete,
                "retry": client.tasks.retry}[action](args.task_id)
    if args.json or args.quiet:
        return show(args, task)
    if action == "delete":
        print(f"deleted task {task.id} (it was {task.status})")
    elif action == "retry":
        print(f"retrying task {task.id} (now {task.status})")
    else:
        out.print_fields(out.task_fields(task))


# -- the service -----------------------------------------------------------------------------

def cmd_health(client: Client, args: argparse.Namespace) -> None:
    health = client.health()
    if args.json:
        out.print_json(health)
    else:
        parts = {k: (v or {}).get("ok") for k, v in (("database", health.database),
                                                    ("broker", health.broker))}
        detail = ", ".join(f"{k} {'ok' if ok else 'down'}" for k, ok in parts.items())
        print(f"{health.status} ({detail})")
    if not health.ok:
        raise SystemExit(1)


def cmd_me(client: Client, args: argparse.Namespace) -> None:
    me = client.me()
    show(args, me, lambda: [("owner", me.owner), ("key name", me.name),
                            ("admin", me.admin), *sorted((me.limits or {}).items())],
         ident=me.owner)


def cmd_models(client: Client, args: argparse.Namespace) -> None:
    catalog = client.models()
    if args.json:
        return out.print_json(catalog)
    for name in catalog.models or []:
        print(name if args.quiet or name != catalog.default else f"{name} (default)")


def cmd_workers(client: Client, args: argparse.Namespace) -> None:
    workers = client.workers()
    show_many(args, workers, ("ID", "DEVICE", "QUEUES", "MODELS", "TASK", "LAST SEEN"),
              lambda w: (w.id, w.device, w.queues, w.models, w.current_task, w.last_seen))


def show_hits(args: argparse.Namespace, hits: list[SearchHit], with_collection: bool) -> None:
    """Search hits as JSON, ids (``-q``: media ids, after their collection's with
    ``with_collection``) or a table saying why each matched."""
    if args.json:
        return out.print_json(hits)
    if args.quiet:
        ids = [f"{h.collection_id} {h.media_id}" if with_collection else str(h.media_id)
               for h in hits]
        return print("\n".join(ids)) if ids else None
    out.print_table(out.hit_headers(with_collection),
                    [out.hit_row(h, with_collection) for h in hits], max_width=80)


def cmd_search(client: Client, args: argparse.Namespace) -> None:
    if args.extra:  # an unquoted query, or the former `hark search COLLECTION QUERY`
        raise UsageError("give the query as one argument (quote it); to search one "
                         "collection: hark search QUERY --collection ID, or "
                         "hark collections search ID QUERY")
    hits = client.search(args.query, top_k=args.top_k, mode=args.mode,
                         collections=args.collections)
    show_hits(args, hits, with_collection=True)


def _commands() -> dict[str, Command]:
    from ._cli_resources import cmd_collections, cmd_webhooks

    return {"analyze": cmd_analyze, "index": cmd_index, "health": cmd_health,
            "me": cmd_me, "models": cmd_models, "workers": cmd_workers, "tasks": cmd_tasks,
            "collections": cmd_collections, "search": cmd_search, "webhooks": cmd_webhooks}


COMMANDS = _commands()
