"""Benchmarks: each script starts Pushflow itself, loads it on loopback and writes RESULTS.md."""
