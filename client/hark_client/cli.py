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
from ._client import Client
from ._config import API_KEY_ENV, DEFAULT_URL, URL_ENV
from ._version import __version__
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
Handler = Callable[[Client, argparse.Namespace], None]


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
        client.collections.delete(args.id)
        return None if args.json else print(f"deleted collection {args.id}")
    if action == "media":
        media = client.collections.media(args.id)
        if args.json:
            return out.print_json(media)
        return out.print_table(("MEDIA ID", "STATUS", "DURATION", "CREATED"),
                               [(m.id, m.status, m.duration, m.created_at) for m in media])
    if action == "create":
        collection = client.collections.create(args.id, args.name, args.description)
    else:
        collection = client.collections.get(args.id)
    if args.json:
        return out.print_json(collection)
    out.print_fields([("id", collection.id), ("name", collection.name),
                      ("description", collection.description),
                      ("media", collection.media_count), ("created", collection.created_at)])


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
        return out.print_table(("ID", "URL", "EVENTS", "CREATED"),
                               [(w.id, w.url, w.events, w.created_at) for w in hooks])
    if action == "create":
        hook = client.webhooks.create(args.url_arg, args.event or None)
        if args.json:
            return out.print_json(hook)
        out.print_fields([("id", hook.id), ("url", hook.url), ("events", hook.events),
                          ("secret", hook.secret)])
        return print("keep the secret: it verifies deliveries and is not shown again",
                     file=sys.stderr)
    if action == "delete":
        client.webhooks.delete(args.id)
        return None if args.json else print(f"deleted webhook {args.id}")
    deliveries = client.webhooks.deliveries(args.id)
    if args.json:
        return out.print_json(deliveries)
    out.print_table(("ID", "EVENT", "STATUS", "HTTP", "ATTEMPTS", "CREATED"),
                    [(d.id, d.event, d.status, d.response_status, d.attempts, d.created_at)
                     for d in deliveries])


# -- parser ----------------------------------------------------------------------------------

def _add_globals(parser: argparse.ArgumentParser, top: bool) -> None:
    """``--url``/``--api-key``/``--json`` work before or after the command."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection")
    group.add_argument("--url", default=default(None),
                       help=f"API base URL (${URL_ENV}, default {DEFAULT_URL})")
    group.add_argument("--api-key", default=default(None), help=f"API key (${API_KEY_ENV})")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="print the server's JSON instead of tables")


def _wait_args(parser: argparse.ArgumentParser, optional: bool = True) -> None:
    if optional:
        parser.add_argument("--wait", action="store_true", help="wait for the task to finish")
    parser.add_argument("--timeout", type=float, help="give up waiting after this many seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hark", description="Hark media-analysis API client.")
    parser.add_argument("--version", action="version", version=f"hark-client {__version__}")
    _add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(sub: Any, name: str, handler: Handler, help: str,
                **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, **kw)
        _add_globals(p, top=False)
        p.set_defaults(handler=handler)
        return p

    command(commands, "health", cmd_health, "check that the API, database and broker are up")
    p = command(commands, "analyze", cmd_analyze, "transcribe a media file or URL")
    p.add_argument("source", metavar="FILE_OR_URL")
    p.add_argument("--model")
    p.add_argument("--language", help="spoken language code; detected when omitted")
    p.add_argument("--translate", action="store_true", help="translate into English")
    p.add_argument("--words", action="store_true", help="word-level timestamps")
    p.add_argument("--format", choices=("txt", "srt", "vtt", "json"), default="txt",
                   help="transcript format printed with --wait (default txt)")
    p.add_argument("--priority", type=int, choices=range(10), metavar="0-9")
    p.add_argument("--device", choices=("cpu", "gpu"))
    _wait_args(p)
    p = command(commands, "index", cmd_index, "transcribe media into a collection for search")
    p.add_argument("source", metavar="FILE_OR_URL")
    p.add_argument("--collection", required=True)
    p.add_argument("--media-id")
    p.add_argument("--reindex", action="store_true", help="replace it if already indexed")
    p.add_argument("--priority", type=int, choices=range(10), metavar="0-9")
    p.add_argument("--device", choices=("cpu", "gpu"))
    _wait_args(p)

    tasks = command(commands, "tasks", cmd_tasks, "inspect and manage tasks")
    actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "count", cmd_tasks, "tasks per status")
    p = command(actions, "list", cmd_tasks, "tasks, newest first")
    p.add_argument("--status", choices=[s.value for s in TaskStatus])
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    for name, text in (("get", "show a task"), ("delete", "delete (cancel) a task"),
                       ("retry", "run a failed task again"), ("wait", "wait for a task")):
        p = command(actions, name, cmd_tasks, text)
        p.add_argument("id", metavar="TASK_ID")
        if name == "wait":
            _wait_args(p, optional=False)

    colls = command(commands, "collections", cmd_collections, "manage search collections")
    actions = colls.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "list", cmd_collections, "all collections")
    p = command(actions, "create", cmd_collections, "create a collection")
    p.add_argument("id", metavar="COLLECTION_ID")
    p.add_argument("--name", required=True)
    p.add_argument("--description")
    for name, text in (("get", "show a collection"), ("delete", "delete a collection"),
                       ("media", "media indexed in a collection")):
        command(actions, name, cmd_collections, text).add_argument("id", metavar="COLLECTION_ID")

    p = command(commands, "search", cmd_search, "search a collection by meaning")
    p.add_argument("collection", metavar="COLLECTION_ID")
    p.add_argument("query")
    p.add_argument("--top-k", type=int, default=10)

    hooks = command(commands, "webhooks", cmd_webhooks, "manage webhook subscriptions")
    actions = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "list", cmd_webhooks, "all webhooks")
    p = command(actions, "create", cmd_webhooks, "subscribe a URL to task events")
    p.add_argument("url_arg", metavar="URL")
    p.add_argument("--event", action="append", help="an event to send (repeatable)")
    for name, text in (("delete", "delete a webhook"), ("deliveries", "recent deliveries")):
        command(actions, name, cmd_webhooks, text).add_argument("id", metavar="WEBHOOK_ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.progress = out.ProgressBar()
    try:
        with Client(base_url=args.url, api_key=args.api_key) as client:
            args.handler(client, args)
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
