"""Pushflow's settings plus one bare view at /bench/bare: the baseline the ingest path is measured against."""
from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
