"""The commands: a thin layer over the library that parses and validates the command line
(Hydra or argparse), reports every error in one line with one exit-code policy
(``riskq.cli.errors``) and calls the library.

    riskq-train -> riskq.cli.train     riskq-eval -> riskq.cli.evaluate
    riskq-rigm  -> riskq.cli.rigm      riskq-plot -> riskq.cli.plot

Only this package imports Hydra (``riskq.cli.compose`` holds the ConfigStore and composition);
nothing outside it imports ``riskq.cli`` (tests/test_structure.py).
"""
