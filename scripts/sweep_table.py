"""Deprecated: ``riskq-table sweep`` is the command; this path runs it for earlier command lines.

riskq-table sweep results/sweeps/risk_ladder --keys greedy_action eval/return_mean
"""

import sys

from riskq.cli.table import deprecated_script

if __name__ == "__main__":
    sys.exit(deprecated_script("sweep", sys.argv))
