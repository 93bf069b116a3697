"""Webhook tables (subscriptions, deliveries). Imported by ``core.models``."""
