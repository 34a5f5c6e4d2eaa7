"""Business events: webhook subscriptions, kept flow outputs with signed download URLs, and pull queues."""
