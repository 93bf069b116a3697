"""Celery workers: the Celery app, thin tasks, and the plain functions they call."""
