"""Small helpers that need no models: environment parsing, paths, time."""
