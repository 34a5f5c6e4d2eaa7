"""Flows (source -> mapping -> destination), their runs, the engine and the mapping."""
