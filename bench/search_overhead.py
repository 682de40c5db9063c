"""Engine overhead: the share of a search's wall time not spent in trial work.

overhead = 1 - (sum of trial wall times) / (concurrent slots x study wall time): Ray start-up, scheduling,
Optuna asks and tells, table writes and idle slots all count against the engine. Goal <= 5% on the default
study. Run: .venv/bin/python -m bench.search_overhead [STUDY] [--trials N]   (writes bench/results/search_overhead.json)
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from archlab.search.engine import run_search
from archlab.search.results import load_table
from archlab.search.study import load_study
from bench.common import write_result

GOAL = 0.05


def overhead(run_dir: Path, slots: int) -> dict[str, float]:
    """Overhead figures of a finished run folder."""
    state = json.loads((run_dir / "state.json").read_text())
    table = load_table(run_dir)
    wall = float(state["elapsed_s"])
    work = float(table["trial_s"].fillna(0).sum())
    return {"wall_s": wall, "trial_work_s": work, "slots": slots, "trials": len(table),
            "overhead": 1.0 - work / (slots * wall)}


def main() -> None:
    """Run the study once and print its engine overhead."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", nargs="?", default="studies/mobile_frontier.yaml")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--run", default=None, help="measure an existing run folder of STUDY instead of running it")
    args = parser.parse_args()
    study = load_study(args.study)
    if args.run:
        out = Path(args.run)
    else:
        out = Path(tempfile.mkdtemp(prefix="archlab-overhead-")) / "run"
        run_search(args.study, trials=args.trials, out=out)
    figures = overhead(out, study.execution.concurrent)
    print(f"{figures['trials']} trials in {figures['wall_s']:.0f} s on {figures['slots']} slots: trial work "
          f"{figures['trial_work_s']:.0f} s, engine overhead {figures['overhead']:.1%} (goal <= {GOAL:.0%})")
    print(f"written {write_result('search_overhead', {**figures, 'goal': GOAL, 'study': args.study, 'run': str(out)})}")


if __name__ == "__main__":
    main()
