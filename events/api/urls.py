"""The events API is registered on the shared router in config/api_urls.py (subscriptions, queues, outputs)."""
