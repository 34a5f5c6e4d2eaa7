"""Tests of lib/ helpers."""
