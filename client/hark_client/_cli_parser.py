"""The ``hark`` command line's arguments (the commands themselves live in ``cli``)."""

from __future__ import annotations

import argparse
from typing import Any

from ._config import API_KEY_ENV, DEFAULT_URL, URL_ENV
from ._version import __version__
from .models import TaskStatus


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _wait_args(parser: argparse.ArgumentParser, optional: bool = True) -> None:
    if optional:
        parser.add_argument("--wait", action="store_true", help="wait for the task to finish")
    parser.add_argument("--timeout", type=float, help="give up waiting after this many seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hark", description="Hark media-analysis API client.")
    parser.add_argument("--version", action="version", version=f"hark-client {__version__}")
    _add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(sub: Any, name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, **kw)
        _add_globals(p, top=False)
        return p

    command(commands, "health", "check that the API, database and broker are up")
    p = command(commands, "analyze", "transcribe a media file or URL")
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
    p = command(commands, "index", "transcribe media into a collection for search")
    p.add_argument("source", metavar="FILE_OR_URL")
    p.add_argument("--collection", required=True)
    p.add_argument("--media-id")
    p.add_argument("--reindex", action="store_true", help="replace it if already indexed")
    p.add_argument("--priority", type=int, choices=range(10), metavar="0-9")
    p.add_argument("--device", choices=("cpu", "gpu"))
    _wait_args(p)

    tasks = command(commands, "tasks", "inspect and manage tasks")
    actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "count", "tasks per status")
    p = command(actions, "list", "tasks, newest first")
    p.add_argument("--status", choices=[s.value for s in TaskStatus])
    p.add_argument("--limit", type=_positive, default=20, help="at most this many (default 20)")
    for name, text in (("get", "show a task"), ("delete", "delete (cancel) a task"),
                       ("retry", "run a failed task again"), ("wait", "wait for a task")):
        p = command(actions, name, text)
        p.add_argument("id", metavar="TASK_ID")
        if name == "wait":
            _wait_args(p, optional=False)

    colls = command(commands, "collections", "manage search collections")
    actions = colls.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "list", "all collections")
    p = command(actions, "create", "create a collection")
    p.add_argument("id", metavar="COLLECTION_ID")
    p.add_argument("--name", required=True)
    p.add_argument("--description")
    for name, text in (("get", "show a collection"), ("delete", "delete a collection"),
                       ("media", "media indexed in a collection")):
        command(actions, name, text).add_argument("id", metavar="COLLECTION_ID")

    p = command(commands, "search", "search a collection by meaning")
    p.add_argument("collection", metavar="COLLECTION_ID")
    p.add_argument("query")
    p.add_argument("--top-k", type=_positive, default=10)

    hooks = command(commands, "webhooks", "manage webhook subscriptions")
    actions = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "list", "all webhooks")
    p = command(actions, "create", "subscribe a URL to task events")
    p.add_argument("url_arg", metavar="URL")
    p.add_argument("--event", action="append", help="an event to send (repeatable)")
    for name, text in (("delete", "delete a webhook"), ("deliveries", "recent deliveries")):
        command(actions, name, text).add_argument("id", metavar="WEBHOOK_ID")
    return parser
