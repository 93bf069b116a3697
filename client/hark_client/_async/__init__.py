"""The client, written once for asyncio in ``_async``; ``_sync`` is generated from it."""
