"""Multi-objective search: studies, the Optuna/Ray Tune engine, early stopping, results tables, Pareto.

It proposes ArchSpecs from a space and records measured trials in a run folder.
"""
