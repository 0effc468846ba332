import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))      # tests/reference.py

# `make test` runs a pytest-xdist worker a core: each worker's torch then takes one thread, not
# one a core (read when torch is first imported, which is after this file)
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
