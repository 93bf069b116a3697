"""Python client for the Hark media-analysis API.

    from hark_client import Client

    with Client() as hark:  # $HARK_URL and $HARK_API_KEY
        task = hark.analyze("talk.mp3", wait=True)
        print(task.transcript.text)
"""

from ._async.client import AsyncClient
from ._config import RetryConfig
from ._sync.client import Client
from ._types import NOT_GIVEN, NotGiven
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
    UnsupportedMediaTypeError,
    ValidationError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from .models import (
    SEARCH_MODES,
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
from .models_platform import Account, ModelCatalog, TaskEvent, TaskUpdate, Worker
from .webhooks import sign_webhook, verify_webhook

__all__ = [
    "NOT_GIVEN",
    "SEARCH_MODES",
    "Account",
    "ModelCatalog",
    "NotGiven",
    "TaskEvent",
    "TaskUpdate",
    "UnsupportedMediaTypeError",
    "Worker",
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
