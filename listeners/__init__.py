"""Listeners (the URLs partners push to), the messages they receive, and the ingest path."""
