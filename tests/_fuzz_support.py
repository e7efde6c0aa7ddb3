"""Shared settings of the property-based fuzzers (``tests/test_fuzz_*.py``, issue 17 item 8).

Each fuzz target runs ``TRADEBOT_FUZZ_EXAMPLES`` generated inputs (default 1,000 in the
ordinary suite; the issue's fuzz run used 10,000 per target:
``TRADEBOT_FUZZ_EXAMPLES=10000 pytest -q tests/test_fuzz_*.py --hypothesis-show-statistics``).
No deadline: the machine is shared, and a slow example is not a bug.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("TRADEBOT_FUZZ_EXAMPLES", "1000"))

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""``@fuzz`` on a ``@given`` test: ``FUZZ_EXAMPLES`` examples, no deadline."""
