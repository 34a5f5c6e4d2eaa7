"""`make bench`: run every benchmark in turn; exits non-zero if one reports a failure."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["ingest.py", "latency.py", "sync_roundtrip.py", "mapping.py", "parse.py", "flow_memory.py", "database_write.py"]

if __name__ == "__main__":
    codes = [subprocess.run([sys.executable, str(HERE / name)]).returncode for name in BENCHMARKS]
    sys.exit(max(codes))
