"""Mutation testing of the pure rules (`make mutate`): mutmut over domain/ with the service-free unit tests.

mutmut (configuration in pyproject.toml, [tool.mutmut]) copies the code to mutants/, changes one operator,
constant or call at a time, and runs the unit tests that cover the changed function; a mutant no test notices
"survives". This script runs it bounded in time (MUTATE_TIMEOUT_S, default 1800 s; MUTATE_CHILDREN workers,
default 2), then writes benchmarks/results/mutation.json: the score over domain/, counts by status, every
surviving mutant with its diff, and the mutants listed in EQUIVALENT (no test can tell them apart from the real
code) with the reason, left out of the score. mutmut keeps its results in mutants/: a second run re-tests only
the functions (and tests) that changed since.

    PYTHONPATH=. .venv/bin/python benchmarks/mutation.py [--timeout 1800] [--children 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "mutation.json"
MUTMUT = [sys.executable, "-m", "mutmut"]
KILLED = {"killed", "timeout", "caught by type check"}
GOAL = 0.90

# Mutants no test can kill because the mutated code behaves the same, by name (mutmut numbers the mutants of a
# function in order, so a name stays valid until that function changes; the script reports stale names).
EQUIVALENT: dict[str, str] = {}


def _mutmut(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MUTMUT, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _statuses() -> dict[str, str]:
    p = _mutmut("results", "--all", "true")
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^\s+(\S+): (.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _diff(name: str) -> str:
    text = _mutmut("show", name).stdout
    return "\n".join(line for line in text.splitlines()[1:] if line.startswith(("@@", "-", "+"))
                     and not line.startswith(("---", "+++")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("MUTATE_TIMEOUT_S", 1800)))
    ap.add_argument("--children", type=int, default=int(os.environ.get("MUTATE_CHILDREN", 2)))
    args = ap.parse_args()
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg()
    t0 = time.monotonic()
    complete = True
    try:
        run = subprocess.run([*MUTMUT, "run", "--max-children", str(args.children)], cwd=ROOT, timeout=args.timeout,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return run.returncode
    except subprocess.TimeoutExpired:
        complete = False  # what was checked is kept; the rest reads "not checked"
    seconds = time.monotonic() - t0

    statuses = _statuses()
    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    domain = {n: s for n, s in statuses.items() if n.startswith("domain.")}
    equivalent = {n: r for n, r in EQUIVALENT.items() if n in domain and domain[n] not in KILLED}
    considered = {n: s for n, s in domain.items() if n not in equivalent and s != "skipped"}
    killed = sum(s in KILLED for s in considered.values())
    score = killed / len(considered) if considered else 0.0
    survivors = [{"mutant": n, "status": s, "diff": _diff(n)} for n, s in sorted(considered.items())
                 if s not in KILLED]
    result = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_at_start": load_start,
                    "load_avg_at_end": os.getloadavg(),
                    "note": "2-core machine shared with other work; the load averages say how busy it was"},
        "tool": f"mutmut {_mutmut('--version').stdout.strip().split()[-1]}",
        "complete": complete, "seconds": round(seconds, 1), "children": args.children,
        "mutants": len(statuses), "counts": counts,
        "domain": {"mutants": len(domain), "equivalent": len(equivalent), "considered": len(considered),
                   "killed": killed, "score": round(score, 4), "goal": GOAL},
        "equivalent": [{"mutant": n, "reason": r, "diff": _diff(n)} for n, r in sorted(equivalent.items())],
        "stale_equivalent_names": sorted(n for n in EQUIVALENT if n not in domain or domain[n] in KILLED),
        "survivors": survivors,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"mutation score over domain/: {killed}/{len(considered)} = {score:.1%} of non-equivalent mutants killed "
          f"({len(equivalent)} equivalent, {len(survivors)} surviving; {len(statuses)} mutants in {seconds:.0f} s"
          f"{'' if complete else ', stopped by the time limit'}) -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
