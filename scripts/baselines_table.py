"""Deprecated: ``riskq-table baselines`` is the command; this path runs it for earlier command
lines.

    riskq-table baselines results/sweeps/baselines_macn --out results/baselines
"""

import sys

from riskq.cli.table import deprecated_script

if __name__ == "__main__":
    sys.exit(deprecated_script("baselines", sys.argv))
