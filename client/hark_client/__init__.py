"""Python client for the Hark media-analysis API.

    from hark_client import Client

    with Client() as hark:  # $HARK_URL and $HARK_API_KEY
        task = hark.analyze("talk.mp3", wait=True)
        print(task.transcript.text)
"""

from ._async_client import AsyncClient
from ._client import Client
from ._config import RetryConfig
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    HarkError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TaskFailedError,
    ValidationError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from .models import (
    CallbackSecret,
    Collection,
    Delivery,
    Health,
    Media,
    Page,
    SearchHit,
    Segment,
    Task,
    TaskCounts,
    TaskStatus,
    Transcript,
    Webhook,
    Word,
)
from .webhooks import sign_webhook, verify_webhook

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "CallbackSecret",
    "Client",
    "Collection",
    "ConflictError",
    "Delivery",
    "HarkError",
    "Health",
    "Media",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryConfig",
    "SearchHit",
    "Segment",
    "ServerError",
    "ServiceUnavailableError",
    "Task",
    "TaskCounts",
    "TaskFailedError",
    "TaskStatus",
    "Transcript",
    "ValidationError",
    "WaitTimeoutError",
    "Webhook",
    "WebhookVerificationError",
    "Word",
    "__version__",
    "sign_webhook",
    "verify_webhook",
]
