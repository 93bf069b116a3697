"""Fault-injection runs: real processes, real network cuts, printed checks and figures.

Each script module exposes ``main() -> int``; ``python -m bench.faults.run_all`` runs them.
"""
