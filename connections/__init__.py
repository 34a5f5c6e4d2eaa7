"""Connections: where flows write and read. One transport module per kind."""
