# Generated from hark_client/_async/__init__.py by scripts/generate_sync.py: do not edit.
# Change the async code, then run `python scripts/generate_sync.py`.
"""The client, written once for asyncio in ``_async``; ``_sync`` is generated from it."""
