"""Test tiers: `tests/unit` needs no server (`make test-unit`); `tests/integration` starts real
PostgreSQL, Redis and Celery workers lazily, in session fixtures (`make test` runs both)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
