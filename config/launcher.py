"""`make run`: prepare the database, then start web, worker and scheduler as one program.

PUSHFLOW_PROCESSES (default "web,worker,scheduler") chooses which to start, for
running them on separate machines. One Ctrl-C (SIGINT) or SIGTERM stops all; if one of them dies, the others
are stopped too and the launcher exits non-zero, so a supervisor can restart it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from lib.env import env_int, env_list, env_str

PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)


def commands() -> dict[str, list[str]]:
    port = env_int("PORT", 8000)
    host = env_str("HOST", "127.0.0.1")
    web_workers = env_int("PUSHFLOW_WEB_WORKERS", 2)
    concurrency = env_int("PUSHFLOW_WORKER_CONCURRENCY", 2)
    log_level = env_str("PUSHFLOW_LOG_LEVEL", "INFO").lower()
    return {
        # uvicorn: HTTP parsed in C on an event loop, Django run on a thread pool per process
        # (PUSHFLOW_WEB_THREADS, see config/asgi.py). Under gunicorn's gthread workers, its HTTP
        # parsing and connection handling in Python were a third of the web's CPU per ingested
        # payload (bench/ingest.py, py-spy).
        "web": [
            os.path.join(BIN, "uvicorn"), "config.asgi:application", "--host", host, "--port", str(port),
            "--workers", str(web_workers), "--http", "config.http_protocol:ListenerSafeProtocol",
            "--loop", "uvloop", "--lifespan", "off", "--timeout-keep-alive", "5",
            "--timeout-graceful-shutdown", "20", "--log-level", log_level,
            # The caller's address is the socket's: X-Forwarded-For would let any local client pass
            # a listener's address allow-list (PUSHFLOW_BEHIND_PROXY trusts only X-Forwarded-Proto).
            "--no-proxy-headers", "--no-server-header",
            # Every request is already on the messages page; an access log line per request cost
            # ~10% of ingest under load.
            *([] if env_str("PUSHFLOW_ACCESS_LOG", "") else ["--no-access-log"]),
        ],
        "worker": [
            os.path.join(BIN, "celery"), "-A", "config", "worker", "--loglevel", log_level,
            "-Q", ",".join(env_list("PUSHFLOW_WORKER_QUEUES", ["ingest", "timed", "maintenance"])),
            "--concurrency", str(concurrency), "--without-mingle", "--without-gossip",
        ],
        "scheduler": [os.path.join(BIN, "celery"), "-A", "config", "beat", "--loglevel", log_level],
    }


def lower_priority(niceness: int) -> None:
    """Nice this (new-session) process. Linux schedules each session as its own group, so
    the group's weight is lowered too, or the nice value would change nothing."""
    os.nice(niceness)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(niceness))
    except OSError:
        pass  # no autogroups here (not Linux, or disabled): plain nice is what counts


def prepare() -> None:
    manage = [PYTHON, "manage.py"]
    for step in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"], ["ensure_admin"]):
        subprocess.run(manage + step, check=True)


def main() -> int:
    prepare()
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    wanted = env_list("PUSHFLOW_PROCESSES", ["web", "worker", "scheduler"])
    # On one machine, taking payloads in comes first: during a burst the web answers
    # at full speed and the worker (lowest CPU priority) catches up behind it. At 10 instead
    # of 19 the worker's share of a flood's CPU put the ingest p99 at 32 connections at
    # 43-59 ms instead of 29-40 (bench/ingest.py, PostgreSQL, alternated runs). An idle
    # machine runs flows at full speed either way.
    worker_niceness = env_int("PUSHFLOW_WORKER_NICE", 19)
    for name, argv in commands().items():
        if name not in wanted:
            continue
        # Own process group, so a terminal's Ctrl-C reaches the launcher only and it stops them in order.
        niceness = worker_niceness if name == "worker" else 0
        children[name] = subprocess.Popen(argv, start_new_session=True,
                                          preexec_fn=(lambda n=niceness: lower_priority(n)) if niceness else None)
    print(f"Pushflow is starting on http://{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000)}/ (Ctrl-C stops it)", flush=True)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping Pushflow", file=sys.stderr, flush=True)
                exit_code = 1
                stopping = True
                break
        time.sleep(0.3)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.time() + 25
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
