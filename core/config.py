"""Settings read from environment variables.

Every setting has an embedded default that runs on a laptop with nothing installed but
Python: the private PostgreSQL and Redis of :mod:`core.embedded` (data under ``DATA_DIR``,
``./var``), on ``EMBEDDED_PG_PORT`` and ``EMBEDDED_REDIS_PORT`` of 127.0.0.1. Set
``DATABASE_URL`` and ``BROKER_URL`` to run on your own PostgreSQL (with pgvector) and Redis
(or RabbitMQ).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def worker_threads() -> int:
    """Torch intra-op threads for one pool process: ``WORKER_THREADS`` when set above 0;
    else 1 for an ``embed`` worker (one short query is a few small matrix products; on a
    busy host a second spinning thread made it 30x slower, see the README);
    else the CPUs this process may run on divided by ``WORKER_CONCURRENCY`` (pool
    processes; unset or 1 for the default batching worker, whose tasks share one process
    and its threads), at least 1, so the pool does not oversubscribe."""
    threads = _env_int("WORKER_THREADS", 0)
    if threads > 0:
        return threads
    if os.environ.get("HARK_WORKER_ROLE") == "embed":
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, _env_int("WORKER_CONCURRENCY", 1)))


def worker_batch_wait() -> float:
    """Seconds a batching model worker waits to fill a decoding batch with the windows of
    tasks it already took that are still fetching or decoding their media
    (``WORKER_BATCH_WAIT``, default 1; 0: never wait)."""
    return max(0.0, _env_float("WORKER_BATCH_WAIT", 1.0))


def worker_decode_batch() -> int:
    """Most windows a model worker decodes in one batch (``WORKER_DECODE_BATCH``, default
    8; ``run_transcription``'s ``batch_size`` option overrides it). A GPU usually wants
    more (``make gpu-check`` measures 8, 32 and 64)."""
    return max(1, _env_int("WORKER_DECODE_BATCH", 8))


# The embedded servers' ports: the standard ones plus 10000, clear of a system install.
EMBEDDED_PG_PORT = 15432
EMBEDDED_REDIS_PORT = 16379


def embedded_database_url() -> str:
    """The embedded PostgreSQL's database (``DATABASE_URL`` when that is unset)."""
    port = _env_int("EMBEDDED_PG_PORT", EMBEDDED_PG_PORT)
    return f"postgresql://postgres@127.0.0.1:{port}/hark"


def embedded_broker_url() -> str:
    """The embedded Redis (``BROKER_URL`` when that is unset)."""
    return f"redis://127.0.0.1:{_env_int('EMBEDDED_REDIS_PORT', EMBEDDED_REDIS_PORT)}/0"


@dataclass(frozen=True)
class Settings:
    """Platform configuration; build it with :meth:`from_env`."""

    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    embedded_pg_port: int = EMBEDDED_PG_PORT
    embedded_redis_port: int = EMBEDDED_REDIS_PORT
    # Queue a task goes to when the request names none: "cpu" or "gpu".
    default_device: str = "cpu"
    # How long a request without ?defer=true waits for its result.
    sync_timeout: float = 30.0
    max_sync_timeout: float = 300.0
    # How long an OpenAI-compatible call (/v1/audio/*) waits for its task: OpenAI clients
    # expect the transcript in the answer. Under the openai package's 600 s read timeout.
    openai_sync_timeout: float = 540.0
    max_request_bytes: int = 200 * 1024 * 1024
    api_bootstrap_key: str | None = None
    diagnostics: bool = False
    # Worker liveness and recovery.
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 30.0
    sweep_interval: float = 10.0
    created_grace: float = 10.0
    assigned_grace: float = 60.0
    max_retries: int = 3
    # Redis re-delivers unacked messages after this; keep it far above any task's length.
    # Dead workers are detected by heartbeats instead.
    visibility_timeout: float = 12 * 3600.0
    # Namespace for every Redis key of this deployment, so several can share one Redis.
    broker_key_prefix: str = ""
    key_cache_seconds: float = 10.0
    # Media: longest accepted duration, private-network URLs, download timeout.
    max_media_seconds: float = 4 * 3600.0
    media_allow_private: bool = False
    media_download_timeout: float = 120.0
    webhook_allow_private: bool = False
    metrics_public: bool = False
    # Abuse limits per API key: requests per minute (0 = off) with a burst allowance,
    # and how many tasks may be created/assigned/running at once (0 = no cap).
    rate_limit_per_minute: int = 0
    rate_limit_burst: int = 0
    max_active_tasks: int = 0
    # Failed authentications (unknown or revoked keys) per client address a minute, over
    # which the API answers 429 without looking keys up (0 = no limit).
    auth_failures_per_minute: int = 60
    # Reverse proxies in front of the API whose X-Forwarded-For names the client.
    trusted_proxies: int = 0
    # Retention: finished tasks (and their events) and stored media expire (0 = keep).
    result_retention_days: float = 0.0
    media_retention_hours: float = 0.0
    retention_interval: float = 3600.0
    # Signed URLs for <audio> and EventSource (no key header): HMAC secret and lifetime.
    url_signing_secret: str | None = None
    signed_url_seconds: float = 3600.0
    # Server-Sent Events: streams one API process holds at once (more get 429) and how
    # long one lasts before the client reconnects (with Last-Event-ID).
    max_streams: int = 150
    stream_seconds: float = 300.0
    # Models the API accepts while no worker reports what it can run (``MODELS``), and the
    # one a request without ``model`` gets (``WHISPER_MODEL``, as the workers use).
    models: tuple[str, ...] = ("tiny.en", "base")
    default_model: str = "tiny.en"
    # Submissions to a queue no online worker consumes: refused (400) unless allowed.
    allow_unknown_queues: bool = False
    # How long an API process reuses what online workers report (models, queues).
    presence_cache_seconds: float = 1.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        data_dir = Path(os.environ.get("DATA_DIR", "var")).resolve()
        values = dict(
            data_dir=data_dir,
            database_url=os.environ.get("DATABASE_URL") or embedded_database_url(),
            broker_url=os.environ.get("BROKER_URL") or embedded_broker_url(),
            embedded_pg_port=_env_int("EMBEDDED_PG_PORT", EMBEDDED_PG_PORT),
            embedded_redis_port=_env_int("EMBEDDED_REDIS_PORT", EMBEDDED_REDIS_PORT),
            default_device=os.environ.get("DEFAULT_DEVICE", "cpu"),
            sync_timeout=_env_float("SYNC_TIMEOUT", 30.0),
            max_sync_timeout=_env_float("MAX_SYNC_TIMEOUT", 300.0),
            openai_sync_timeout=_env_float("OPENAI_SYNC_TIMEOUT", 540.0),
            max_request_bytes=_env_int("MAX_REQUEST_MB", 200) * 1024 * 1024,
            api_bootstrap_key=os.environ.get("API_BOOTSTRAP_KEY") or None,
            diagnostics=_env_bool("DIAGNOSTICS"),
            heartbeat_interval=_env_float("HEARTBEAT_INTERVAL", 5.0),
            heartbeat_timeout=_env_float("HEARTBEAT_TIMEOUT", 30.0),
            sweep_interval=_env_float("SWEEP_INTERVAL", 10.0),
            created_grace=_env_float("CREATED_GRACE", 10.0),
            assigned_grace=_env_float("ASSIGNED_GRACE", 60.0),
            max_retries=_env_int("MAX_RETRIES", 3),
            visibility_timeout=_env_float("VISIBILITY_TIMEOUT", 12 * 3600.0),
            broker_key_prefix=os.environ.get("BROKER_KEY_PREFIX", ""),
            key_cache_seconds=_env_float("KEY_CACHE_SECONDS", 10.0),
            max_media_seconds=_env_float("MAX_MEDIA_SECONDS", 4 * 3600.0),
            media_allow_private=_env_bool("MEDIA_ALLOW_PRIVATE"),
            media_download_timeout=_env_float("MEDIA_DOWNLOAD_TIMEOUT", 120.0),
            webhook_allow_private=_env_bool("WEBHOOK_ALLOW_PRIVATE"),
            metrics_public=_env_bool("METRICS_PUBLIC"),
            rate_limit_per_minute=_env_int("RATE_LIMIT_PER_MINUTE", 0),
            rate_limit_burst=_env_int("RATE_LIMIT_BURST", 0),
            max_active_tasks=_env_int("MAX_ACTIVE_TASKS", 0),
            auth_failures_per_minute=_env_int("AUTH_FAILURES_PER_MINUTE", 60),
            trusted_proxies=_env_int("TRUSTED_PROXIES", 0),
            result_retention_days=_env_float("RESULT_RETENTION_DAYS", 0.0),
            media_retention_hours=_env_float("MEDIA_RETENTION_HOURS", 0.0),
            retention_interval=_env_float("RETENTION_INTERVAL", 3600.0),
            url_signing_secret=os.environ.get("URL_SIGNING_SECRET") or None,
            signed_url_seconds=_env_float("SIGNED_URL_SECONDS", 3600.0),
            max_streams=_env_int("MAX_STREAMS", 150),
            stream_seconds=_env_float("STREAM_SECONDS", 300.0),
            models=tuple(name.strip() for name in
                         os.environ.get("MODELS", "tiny.en,base").split(",") if name.strip()),
            default_model=os.environ.get("WHISPER_MODEL") or "tiny.en",
            allow_unknown_queues=_env_bool("ALLOW_UNKNOWN_QUEUES"),
            presence_cache_seconds=_env_float("PRESENCE_CACHE_SECONDS", 1.0),
        )
        values.update(overrides)
        return cls(**values)

