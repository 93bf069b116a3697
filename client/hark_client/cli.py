"""``hark``: the Hark API from the shell.

Exit codes: 0 success, 1 API error or failed task, 2 usage error, 3 connection error,
4 wait timeout. ``--json`` prints what the server returned, for scripts.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import _cli_output as out
from ._cli_parser import build_parser
from ._client import Client
from .errors import (
    APIConnectionError,
    HarkError,
    NotFoundError,
    TaskFailedError,
    WaitTimeoutError,
)
from .models import TaskStatus

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_CONNECTION, EXIT_TIMEOUT = 0, 1, 2, 3, 4
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


# -- commands --------------------------------------------------------------------------------

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


def _wait_options(args: argparse.Namespace) -> dict[str, Any]:
    if not args.wait:
        return {}
    return {"wait": True, "timeout": args.timeout, "on_progress": args.progress}


def _submitted(args: argparse.Namespace, task: Any) -> None:
    if args.json:
        out.print_json(task)
    else:
        print(task.id)
        print(f"submitted ({task.status}); follow it with: hark tasks wait {task.id}",
              file=sys.stderr)


def cmd_analyze(client: Client, args: argparse.Namespace) -> None:
    task = client.analyze(
        **_media(args.source), model=args.model, language=args.language,
        task="translate" if args.translate else None,
        word_timestamps=True if args.words else None, priority=args.priority,
        device=args.device, **_wait_options(args))
    args.progress.done()
    if not args.wait:
        return _submitted(args, task)
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
    task = client.index(**_media(args.source), collection=args.collection,
                        media_id=args.media_id, reindex_if_exists=True if args.reindex else None,
                        priority=args.priority, device=args.device, **_wait_options(args))
    args.progress.done()
    if not args.wait:
        return _submitted(args, task)
    return out.print_json(task) if args.json else out.print_fields(out.task_fields(task))


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
        raise SystemExit(EXIT_API)


def cmd_tasks(client: Client, args: argparse.Namespace) -> None:
    action = args.action
    if action == "count":
        counts = client.tasks.count()
        if args.json:
            return out.print_json(counts)
        rows = [(s.value, getattr(counts, s.value)) for s in TaskStatus]
        return out.print_table(("STATUS", "COUNT"), [*rows, ("total", counts.total)])
    if action == "list":
        tasks = list(client.tasks.list(status=args.status, per_page=min(args.limit, 1000),
                                       limit=args.limit))
        if args.json:
            return out.print_json(tasks)
        return out.print_table(out.TASK_HEADERS, [out.task_row(t) for t in tasks])
    if action == "wait":
        try:
            task = client.tasks.wait(args.id, timeout=args.timeout, on_progress=args.progress)
        finally:
            args.progress.done()
    else:
        task = {"get": client.tasks.get, "delete": client.tasks.delete,
                "retry": client.tasks.retry}[action](args.id)
    if args.json:
        return out.print_json(task)
    if action == "delete":
        print(f"deleted task {task.id} (it was {task.status})")
    elif action == "retry":
        print(f"retrying task {task.id} (now {task.status})")
    else:
        out.print_fields(out.task_fields(task))


def cmd_collections(client: Client, args: argparse.Namespace) -> None:
    action = args.action
    if action == "list":
        items = list(client.collections.list())
        if args.json:
            return out.print_json(items)
        return out.print_table(("ID", "NAME", "MEDIA", "CREATED", "DESCRIPTION"),
                               [(c.id, c.name, c.media_count, c.created_at, c.description)
                                for c in items])
    if action == "delete":
        deleted = client.collections.delete(args.id)
        return out.print_json(deleted) if args.json else print(f"deleted collection {args.id}")
    if action == "media":
        media = list(client.collections.media(args.id))
        if args.json:
            return out.print_json(media)
        return out.print_table(("MEDIA ID", "DURATION", "SEGMENTS", "SOURCE", "CREATED"),
                               [(m.id, m.duration, m.segment_count, m.filename or m.url,
                                 m.created_at) for m in media])
    if action == "create":
        collection = client.collections.create(args.id, args.name, args.description)
    else:
        collection = client.collections.get(args.id)
    if args.json:
        return out.print_json(collection)
    out.print_fields([("id", collection.id), ("name", collection.name),
                      ("description", collection.description),
                      ("media", collection.media_count), ("segments", collection.segment_count),
                      ("created", collection.created_at)])


def cmd_search(client: Client, args: argparse.Namespace) -> None:
    hits = client.search(args.collection, args.query, top_k=args.top_k)
    if args.json:
        return out.print_json(hits)
    out.print_table(("SCORE", "MEDIA", "START", "END", "TEXT"),
                    [(h.score, h.media_id, h.start, h.end, h.text) for h in hits], max_width=80)


def cmd_webhooks(client: Client, args: argparse.Namespace) -> None:
    action = args.action
    if action == "list":
        hooks = client.webhooks.list()
        if args.json:
            return out.print_json(hooks)
        return out.print_table(("ID", "URL", "EVENTS", "ENABLED", "CREATED"),
                               [(w.id, w.url, w.events or "all", w.enabled, w.created_at)
                                for w in hooks])
    if action == "create":
        hook = client.webhooks.create(args.url_arg, args.event or None)
        if args.json:
            return out.print_json(hook)
        out.print_fields([("id", hook.id), ("url", hook.url),
                          ("events", hook.events or "all"), ("secret", hook.secret)])
        return print("keep the secret: it verifies deliveries and is not shown again",
                     file=sys.stderr)
    if action == "delete":
        deleted = client.webhooks.delete(args.id)
        return out.print_json(deleted) if args.json else print(f"deleted webhook {args.id}")
    deliveries = client.webhooks.deliveries(args.id).items
    if args.json:
        return out.print_json(deliveries)
    out.print_table(("DELIVERY", "ATTEMPT", "EVENT", "OUTCOME", "HTTP", "MS", "AT", "ERROR"),
                    [(d.delivery_id, d.attempt, d.event, d.outcome, d.status_code,
                      d.duration_ms, d.created_at, d.error) for d in deliveries])


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], None]] = {
    "analyze": cmd_analyze, "index": cmd_index, "health": cmd_health, "tasks": cmd_tasks,
    "collections": cmd_collections, "search": cmd_search, "webhooks": cmd_webhooks,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.progress = out.ProgressBar()
    try:
        with Client(base_url=args.url, api_key=args.api_key) as client:
            COMMANDS[args.command](client, args)
        return EXIT_OK
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except ValueError as exc:  # refused by the client before sending
        print(f"hark: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WaitTimeoutError as exc:
        _fail(args, exc)
        return EXIT_TIMEOUT
    except APIConnectionError as exc:
        _fail(args, exc)
        return EXIT_CONNECTION
    except TaskFailedError as exc:
        if args.json:
            out.print_json(exc.task)
        _fail(args, exc)
        return EXIT_API
    except HarkError as exc:
        _fail(args, exc)
        return EXIT_API
    except KeyboardInterrupt:
        args.progress.done()
        return 130
    return EXIT_OK  # not reached: parser.error exits


def _fail(args: argparse.Namespace, exc: HarkError) -> None:
    args.progress.done()
    print(f"hark: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
