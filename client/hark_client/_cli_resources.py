"""The ``hark collections`` and ``hark webhooks`` commands."""

from __future__ import annotations

import argparse

from ._cli_commands import UsageError, hint, paged, show, show_hits, show_many
from ._sync.client import Client
from ._types import NOT_GIVEN
from .models import Collection, Webhook

CALLBACKS = "callbacks"
"""The webhook id that names the one-off callbacks' delivery log."""


def _collection_fields(c: Collection) -> list:
    return [("id", c.id), ("name", c.name), ("description", c.description),
            ("media", c.media_count), ("segments", c.segment_count), ("created", c.created_at)]


def cmd_collections(client: Client, args: argparse.Namespace) -> None:
    action = args.action
    if action == "list":
        items = list(client.collections.list(per_page=args.per_page))
        return show_many(args, items, ("ID", "NAME", "MEDIA", "CREATED", "DESCRIPTION"),
                         lambda c: (c.id, c.name, c.media_count, c.created_at, c.description))
    if action == "media":
        media = list(client.collections.media(args.collection_id, per_page=args.per_page))
        return show_many(args, media, ("MEDIA ID", "DURATION", "SEGMENTS", "SOURCE", "CREATED"),
                         lambda m: (m.id, m.duration, m.segment_count, m.filename or m.url,
                                    m.created_at))
    if action in ("get-media", "delete-media"):
        fn = client.collections.get_media if action == "get-media" \
            else client.collections.delete_media
        media = fn(args.collection_id, args.media_id)
        if action == "delete-media" and not (args.json or args.quiet):
            return print(f"deleted media {media.id} from {args.collection_id}")
        return show(args, media, lambda: [
            ("id", media.id), ("collection", media.collection_id), ("task", media.task_id),
            ("duration", media.duration), ("language", media.language),
            ("source", media.filename or media.url), ("created", media.created_at),
            ("segments", [f"{s.start:.2f}-{s.end:.2f} {s.text}" for s in media.segments])])
    if action == "search":
        hits = client.collections.search(args.collection_id, args.query, args.top_k,
                                         mode=args.mode)
        return show_hits(args, hits, with_collection=False)
    if action == "delete":
        deleted = client.collections.delete(args.collection_id)
        if args.json or args.quiet:
            return show(args, deleted)
        return print(f"deleted collection {args.collection_id}")
    if action == "create":
        collection = client.collections.create(args.collection_id, args.name, args.description)
    elif action == "update":
        description = None if args.clear_description else (
            args.description if args.description is not None else NOT_GIVEN)
        name = args.name if args.name is not None else NOT_GIVEN
        if name is NOT_GIVEN and description is NOT_GIVEN:
            raise UsageError("give --name, --description or --clear-description")
        collection = client.collections.update(args.collection_id, name=name,
                                               description=description)
    else:
        collection = client.collections.get(args.collection_id)
    show(args, collection, lambda: _collection_fields(collection))


def _hook_fields(w: Webhook) -> list:
    pairs = [("id", w.id), ("url", w.url), ("events", w.events or "all"),
             ("description", w.description), ("enabled", w.enabled),
             ("disabled reason", w.disabled_reason), ("created", w.created_at)]
    if w.secret:
        pairs.append(("secret", w.secret))
    if w.previous_secret_expires_at:
        pairs.append(("old secret until", w.previous_secret_expires_at))
    return pairs


def _secret_hint(args: argparse.Namespace) -> None:
    hint(args, "keep the secret: it verifies deliveries and is not shown again")


def cmd_webhooks(client: Client, args: argparse.Namespace) -> None:
    action = args.action
    hook_id = getattr(args, "webhook_id", None)
    if action == "list":
        hooks = client.webhooks.list()
        return show_many(args, hooks, ("ID", "URL", "EVENTS", "ENABLED", "CREATED"),
                         lambda w: (w.id, w.url, w.events or "all", w.enabled, w.created_at))
    if action in ("deliveries", "redeliver"):
        return _deliveries(client, args, None if hook_id == CALLBACKS else hook_id)
    if action == "delete":
        deleted = client.webhooks.delete(hook_id)
        if args.json or args.quiet:
            return show(args, deleted)
        return print(f"deleted webhook {hook_id}")
    if action == "create":
        hook = client.webhooks.create(args.url_arg, args.event or None, args.description)
    elif action == "update":
        changes: dict = {}
        if args.new_url:
            changes["url"] = args.new_url
        if args.all_events or args.event:
            changes["events"] = None if args.all_events else args.event
        if args.description is not None:
            changes["description"] = args.description
        if args.enabled is not None:
            changes["enabled"] = args.enabled
        if not changes:
            raise UsageError("give --new-url, --event, --all-events, --description, "
                             "--enable or --disable")
        hook = client.webhooks.update(hook_id, **changes)
    elif action == "rotate-secret":
        hook = client.webhooks.rotate_secret(hook_id, args.grace_seconds)
    else:
        hook = client.webhooks.get(hook_id)
    show(args, hook, lambda: _hook_fields(hook))
    if hook.secret:
        _secret_hint(args)


def _deliveries(client: Client, args: argparse.Namespace, hook_id: str | None) -> None:
    if args.action == "redeliver":
        queued = client.webhooks.redeliver(hook_id, args.delivery_id)
        show(args, queued, lambda: [("delivery", queued.delivery_id),
                                    ("status", queued.delivery_status),
                                    ("attempt", queued.attempt)], ident=queued.delivery_id)
        return
    log = paged(args, lambda n, c: client.webhooks.deliveries(hook_id, per_page=n, cursor=c),
                "deliveries")
    if args.quiet and not args.json:
        return print("\n".join(str(d.delivery_id) for d in log)) if log else None
    show_many(args, log, ("DELIVERY", "ATTEMPT", "EVENT", "OUTCOME", "HTTP", "MS", "AT",
                          "ERROR"),
              lambda d: (d.delivery_id, d.attempt, d.event, d.outcome, d.status_code,
                         d.duration_ms, d.created_at, d.error))
