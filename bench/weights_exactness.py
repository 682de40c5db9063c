"""Weights exactness: every zoo network with a torchvision or timm counterpart, outputs after the weight mapping.

For each (source, network): the counterpart built by torchvision/timm with seeded random weights and running
statistics (archlab.nn.weights.reference_model), its state dict converted by from_torchvision/from_timm, loaded
into the archlab network with strict=True, both run in eval mode, float32, on the same 2 images of --img-size px
(or the network's smallest valid side above it). Reports max |difference| and max |difference| / max |output|
(goal <= 1e-5 relative for all). The tests compare the same way for the networks up to 30M parameters.
Run: .venv/bin/python -m bench.weights_exactness [--img-size 64] [--names resnet50 ...]
     (writes bench/results/weights_exactness.json)
"""
from __future__ import annotations

import argparse
import time

import torch

from archlab.arch.zoo import get_spec
from archlab.core.errors import SpecError
from archlab.nn import weights as W
from archlab.nn.build import build_model
from bench.common import write_result

GOAL = 1e-5


def _size(name: str, wanted: int) -> int:
    for size in (wanted, 2 * wanted, 4 * wanted, 224):
        try:
            get_spec(name, img_size=size)
            return size
        except SpecError:
            continue
    return 224


def compare(source: str, name: str, img_size: int) -> dict[str, object]:
    """One row: the differences between the archlab network and its counterpart on the same weights."""
    t = time.perf_counter()
    ref = W.reference_model(name, source)
    state = W.convert(source, name, ref.state_dict())
    size = _size(name, img_size)
    with torch.device("meta"):
        ours = build_model(W.counterpart_spec(name, source, img_size=size))
    ours.load_state_dict(state, strict=True, assign=True)
    ours.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = ours(x), ref(x)
    diff = float((got - want).abs().max())
    rel = diff / float(want.abs().max())
    return {"source": source, "name": name, "counterpart": W.counterpart_name(name, source), "img_size": size,
            "max_abs_diff": diff, "max_rel_diff": rel, "ok": rel <= GOAL, "seconds": round(time.perf_counter() - t, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--names", nargs="*", default=None)
    args = parser.parse_args()
    rows = []
    for source in W.SOURCES:
        for name in W.counterparts(source):
            if args.names and name not in args.names:
                continue
            row = compare(source, name, args.img_size)
            rows.append(row)
            print(f"{source:12s} {name:22s} {row['counterpart']:24s} {row['img_size']:4d} px  "
                  f"max|diff| {row['max_abs_diff']:.2e}  relative {row['max_rel_diff']:.2e}  "
                  f"{'ok' if row['ok'] else 'ABOVE GOAL'}  {row['seconds']:.1f} s", flush=True)
    worst = max(rows, key=lambda r: r["max_rel_diff"])
    summary = {"goal_relative": GOAL, "networks": len(rows), "all_ok": all(r["ok"] for r in rows),
               "worst": {k: worst[k] for k in ("source", "name", "max_rel_diff")}, "rows": rows}
    write_result("weights_exactness", summary)
    print(f"{len(rows)} comparisons, worst relative difference {worst['max_rel_diff']:.2e} "
          f"({worst['source']} {worst['name']}); all within {GOAL:g}: {summary['all_ok']}")


if __name__ == "__main__":
    main()
