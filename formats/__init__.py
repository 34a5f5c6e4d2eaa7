"""Formats: how a payload is read and written. One codec module per kind."""
