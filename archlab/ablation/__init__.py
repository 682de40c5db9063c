"""Ablation ladders: read a ladder file, resolve its rows into specs, measure them, compare with the paper.

The pure step transforms live in archlab.arch.steps; this package reads (ladder), runs (replay), summarises
(summary) and prints (text) them. Importing it does not import torch.
"""
from archlab.ablation.ladder import (
    ABLATION_STEPS,
    AblationStep,
    Ladder,
    LadderRow,
    PaperFigures,
    ProxySetting,
    ResolvedRow,
    ablation_step,
    apply_overrides,
    describe_ladder,
    ladder_from_dict,
    load_ladder,
    proxy_spec,
    reduce_spec,
    resolve_ladder,
    validate_ladder_file,
)
from archlab.ablation.replay import CSV_COLUMNS, default_out, read_records, run_ablation, write_report
from archlab.ablation.summary import AblationReport, Agreement, StepSummary, agreement, summarize_steps
from archlab.ablation.sweep import SweepReport, parse_budgets, run_budget_sweep
from archlab.ablation.text import format_report, format_sweep

__all__ = ["ABLATION_STEPS", "CSV_COLUMNS", "AblationReport", "AblationStep", "Agreement", "Ladder", "LadderRow",
           "PaperFigures", "ProxySetting", "ResolvedRow", "StepSummary", "SweepReport", "ablation_step",
           "agreement", "apply_overrides", "default_out", "describe_ladder", "format_report", "format_sweep",
           "ladder_from_dict", "load_ladder", "parse_budgets", "proxy_spec", "read_records", "reduce_spec",
           "resolve_ladder", "run_ablation", "run_budget_sweep", "summarize_steps", "validate_ladder_file",
           "write_report"]
