"""Mutation testing of the pure rules (`make mutate`): mutmut over domain/ with the service-free unit tests.

mutmut (configuration in pyproject.toml, [tool.mutmut]) copies the code to mutants/, changes one operator,
constant or call at a time, and runs the unit tests that cover the changed function; a mutant no test notices
"survives". This script runs it bounded in time (MUTATE_TIMEOUT_S, default 1800 s; MUTATE_CHILDREN workers,
default 1: the machine is shared), then writes benchmarks/results/mutation.json: the score over domain/ and per
module, counts by status, every surviving mutant with its diff, and the mutants listed in EXCLUDED (equivalent to
the real code, or out of mutmut's reach) with the reason, left out of the score.

mutmut keeps its results in mutants/ and by itself re-tests only the functions that changed. Before each run this
script also forgets every verdict other than "killed", so mutants that survived or had no test are tried again
against the current tests (a new test can kill them; a killed mutant stays killed while its function is
unchanged). A run stopped by the time limit keeps what it checked: the next run goes on from there. A first run
over all of domain/ (about 4100 mutants) takes about 70 minutes on this 2-core machine at load ~25.

    PYTHONPATH=. nice -n 15 .venv/bin/python benchmarks/mutation.py [--timeout 1800] [--children 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "mutation.json"
MUTMUT = [sys.executable, "-m", "mutmut"]
KILLED = {"killed", "timeout", "caught by type check"}
GOAL = 0.90

from mutation_equivalent import EXCLUDED  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def _statuses() -> dict[str, tuple[str, str]]:
    """mutant name -> (status, source path), from the results mutmut keeps next to each mutated file."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        source = str(meta.relative_to(ROOT / "mutants"))[:-len(".meta")]
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = (status_by_exit_code[code], source)
    return out


def _diff(name: str, source: str) -> str:
    """The changed lines of one mutant (in-process: one `mutmut show` costs seconds here)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    text = get_diff_for_mutant(name, path=source)
    return "\n".join(line for line in text.splitlines() if line.startswith(("-", "+"))
                     and not line.startswith(("---", "+++")))


def _forget_unkilled() -> int:
    """Clear every verdict other than killed in mutants/*.meta, so `mutmut run` tries those mutants again."""
    from mutmut.stats import status_by_exit_code

    forgotten = 0
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        stale = [n for n, c in codes.items() if c is not None and status_by_exit_code[c] not in KILLED]
        for n in stale:
            codes[n] = None
        if stale:
            meta.write_text(json.dumps(data, indent=4))
            forgotten += len(stale)
    return forgotten


def _run(children: int, timeout: float) -> bool:
    """`mutmut run`; False when the time limit stopped it (what was checked is kept, the rest is "not checked").

    mutmut forks its workers: on the time limit the whole process group gets SIGINT (mutmut stops its workers
    and keeps the verdicts it has), then SIGKILL if it has not ended 30 s later."""
    proc = subprocess.Popen([*MUTMUT, "run", "--max-children", str(children)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        return False
    if proc.returncode != 0:
        sys.exit(f"mutmut run failed ({proc.returncode}):\n{err[-3000:]}")
    return True


def _module_scores(considered: dict[str, str], excluded: dict[str, str], domain: dict[str, str]) -> dict[str, dict]:
    """Per domain module: mutants, excluded, considered, not checked, killed, score over the checked ones."""
    out: dict[str, dict] = {}
    for name, status in domain.items():
        m = out.setdefault(name.split(".")[1], {"mutants": 0, "excluded": 0, "considered": 0, "not_checked": 0,
                                                "killed": 0})
        m["mutants"] += 1
        m["excluded"] += name in excluded
        if name in considered:
            m["considered"] += 1
            m["not_checked"] += status == "not checked"
            m["killed"] += status in KILLED
    for m in out.values():
        checked = m["considered"] - m["not_checked"]
        m["score"] = round(m["killed"] / checked, 4) if checked else None
    return dict(sorted(out.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("MUTATE_TIMEOUT_S", 1800)))
    ap.add_argument("--children", type=int, default=int(os.environ.get("MUTATE_CHILDREN", 1)))
    ap.add_argument("--report-only", action="store_true", help="rewrite the JSON from the results in mutants/ (after editing EXCLUDED); "
                    "the last run's date, machine, time and completeness are kept")
    args = ap.parse_args()
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg()
    t0 = time.monotonic()
    os.chdir(ROOT)  # mutmut's helpers read pyproject.toml and mutants/ from the working directory
    forgotten = 0 if args.report_only or not (ROOT / "mutants").exists() else _forget_unkilled()
    complete = None if args.report_only else _run(args.children, args.timeout)
    seconds = time.monotonic() - t0

    found = _statuses()
    statuses = {n: s for n, (s, _) in found.items()}
    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    domain = {n: s for n, s in statuses.items() if n.startswith("domain.")}
    excluded = {n: r for n, r in EXCLUDED.items() if n in domain and domain[n] not in KILLED}
    considered = {n: s for n, s in domain.items() if n not in excluded and s != "skipped"}
    killed = sum(s in KILLED for s in considered.values())
    unchecked = sum(s == "not checked" for s in considered.values())
    checked = len(considered) - unchecked
    # the score is over the mutants a run has checked (mutmut's own summary counts the same way); a run stopped by
    # the time limit also reports the lower bound that counts every unchecked mutant as surviving
    score = killed / checked if checked else 0.0
    lower_bound = killed / len(considered) if considered else 0.0
    survivors = [{"mutant": n, "status": s, "diff": _diff(n, found[n][1])} for n, s in sorted(considered.items())
                 if s not in KILLED and s != "not checked"]
    result = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_at_start": load_start,
                    "load_avg_at_end": os.getloadavg(),
                    "note": "2-core machine shared with other work; the load averages say how busy it was"},
        "tool": f"mutmut {version('mutmut')}",
        "complete": complete, "seconds": None if args.report_only else round(seconds, 1), "children": args.children,
        "retried_unkilled": forgotten, "mutants": len(statuses), "counts": counts,
        "domain": {"mutants": len(domain), "excluded": len(excluded), "considered": len(considered),
                   "checked": checked, "killed": killed, "score": round(score, 4),
                   "score_lower_bound": round(lower_bound, 4), "goal": GOAL,
                   "counts": {"killed": sum(s == "killed" for s in considered.values()),
                              "timeout": sum(s == "timeout" for s in considered.values()),
                              "survived": sum(s == "survived" for s in considered.values()),
                              "no_tests": sum(s == "no tests" for s in considered.values()),
                              "not_checked": sum(s == "not checked" for s in considered.values()),
                              "equivalent_or_excluded": len(excluded)}},
        "modules": _module_scores(considered, excluded, domain),
        "excluded": [{"mutant": n, "reason": r, "diff": _diff(n, found[n][1])} for n, r in sorted(excluded.items())],
        "stale_excluded_names": sorted(n for n in EXCLUDED if n not in domain or domain[n] in KILLED),
        "survivors": survivors,
    }
    if args.report_only and OUT.exists():
        last = json.loads(OUT.read_text())
        for key in ("date", "machine", "complete", "seconds", "children", "retried_unkilled"):
            if key in last:
                result[key] = last[key]
        seconds = result["seconds"] or 0.0
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"mutation score over domain/: {killed}/{checked} = {score:.1%} of the checked non-equivalent mutants killed "
          f"(lower bound counting unchecked ones as surviving: {lower_bound:.1%}) "
          f"({len(excluded)} excluded as equivalent or untestable, {len(survivors)} surviving, {unchecked} not checked yet; "
          f"{len(statuses)} mutants, {result['retried_unkilled']} unkilled ones retried, in {seconds:.0f} s"
          f"{', stopped by the time limit' if result['complete'] is False else ''}) -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
