"""Extension objects, created here and initialised by the factory (``create_app``)."""

from celery import Celery

from core.db import Database
from core.keys import PrincipalCache
from core.notify import CompletionWaiter

db = Database()
celery = Celery("hark")  # publishes by task name; the API never imports task code
waiter = CompletionWaiter()
principals = PrincipalCache()
