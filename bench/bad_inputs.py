"""Time and peak memory of archlab on the worst bad inputs of issue 14, each in a fresh process.

    .venv/bin/python bench/bad_inputs.py            # prints one row per case, the worst last; writes nothing

Every case must exit 2 with one message (no traceback) within seconds and under 1 GB; the script says so per
case and exits 1 if any does not. The inputs are written to a temporary folder and removed afterwards.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = """\
name: t
img_size: 32
stem: {type: conv, width: 16, kernel_size: 3, stride: 1}
all_stages: {block: inverted_residual, kernel_size: 3, expand_ratio: 2, act: relu}
stages:
  - {width: 16, depth: 1, stride: 2}
head: {conv_width: 32}
"""


def _bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    """(name, archlab arguments) for each class of bad input."""
    files = {
        "int_range_1e9.yaml": BASE.replace("depth: 1,", "depth: {low: 1, high: 1000000000},"),
        "float_step_1e-12.yaml": BASE.replace("expand_ratio: 2", "expand_ratio: {low: 1.0, high: 6.0, step: 1.0e-12}"),
        "phi_100.yaml": BASE + "scaling: {phi: 100}\n",
        "depth_1e8.yaml": BASE.replace("depth: 1,", "depth: 100000000,"),
        "max_nan.yaml": BASE + "constraints: {macs: {max: .nan}}\n",
        "alias_bomb.yaml": _bomb(),
        "deep_nesting.yaml": "a: " + "[" * 1_000_000 + "]" * 1_000_000 + "\n",
        "duplicate_keys.yaml": BASE + "img_size: 64\n",
        "not_utf8.yaml": "",
        "choices_500k.yaml": BASE.replace("width: 16, depth: 1", "width: [" + ",".join(map(str, range(1, 500_001)))
                                          + "], depth: 1"),
        "stages_2000.yaml": BASE.replace("  - {width: 16, depth: 1, stride: 2}\n",
                                         "  - {width: 16, depth: 1, stride: 1}\n" * 2000),
    }
    for name, text in files.items():
        (tmp / name).write_text(text)
    (tmp / "not_utf8.yaml").write_bytes(b"name: \xff\xfe\n")
    with open(tmp / "big_50MB.yaml", "wb") as f:
        f.write(b"name: " + b"x" * (50 << 20) + b"\n")
    (tmp / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    os.mkfifo(tmp / "fifo.yaml")
    out = [(f"validate {name}", ["validate", str(tmp / name)]) for name in files]
    out += [("validate big_50MB.yaml", ["validate", str(tmp / "big_50MB.yaml")]),
            ("validate /dev/zero", ["validate", "/dev/zero"]),
            ("validate fifo.yaml", ["validate", str(tmp / "fifo.yaml")]),
            ("show deep.json", ["show", str(tmp / "deep.json")]),
            ("space sample -n 1e9", ["space", "sample", str(ROOT / "search_spaces" / "mobile.yaml"), "-n",
                                     "1000000000"]),
            ("space sample stages_2000.yaml", ["space", "sample", str(tmp / "stages_2000.yaml"), "-n", "1"]),
            ("search --trials 0", ["search", str(ROOT / "studies" / "mobile_frontier.yaml"), "--trials", "0"]),
            ("search --timeout nan", ["search", str(ROOT / "studies" / "mobile_frontier.yaml"), "--timeout", "nan"])]
    return out


_CHILD = """
import resource, sys
from archlab.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("@@peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run(argv: list[str]) -> tuple[int, float, float, str]:
    """Exit code, wall seconds, the child's own peak RSS in MB and its last message line."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT, timeout=120)
    wall = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    peak = next((int(x.split()[1]) / 1024 for x in lines if x.startswith("@@peak_kb")), float("nan"))
    message = next((x for x in reversed(lines) if not x.startswith("@@peak_kb") and x.strip()), "")
    if "Traceback" in proc.stderr:
        message = "Traceback: " + message
    return proc.returncode, wall, peak, message


def main() -> int:
    bad = 0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, argv in cases(Path(folder)):
            code, wall, peak, message = run(argv)
            # a valid but extreme input (2,000 stages) may exit 0; anything else must be refused
            ok = code in ((0, 2) if "stages_2000" in name else (2,)) and not message.startswith("Traceback") \
                and wall < 60 and peak < 1024
            bad += not ok
            rows.append((wall, name, code, peak, message))
            print(f"{'ok ' if ok else 'BAD'} {name:28s} exit {code}  {wall:5.2f} s  peak {peak:6.0f} MB  "
                  f"{message[:110]}", flush=True)
    worst = max(rows)
    print(f"worst: {worst[1]} in {worst[0]:.2f} s; the largest peak memory of any case: "
          f"{max(r[3] for r in rows):.0f} MB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
