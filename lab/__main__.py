"""`python -m lab` (`make lab`): build the lab, send every scenario, tell each journey step by
step, print the summary table, take everything down. `python -m lab clean` (`make lab-clean`)
removes what an interrupted run left. Exit status: 0 every scenario ended as it should, 1 some
did not, 2 the lab could not be built here (not root, no `ip`, a program missing)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import DEFAULT_DIR, DEFAULT_PREFIX
from .netns import check_prefix, namespaces_available, remove_lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("run", "clean"), default="run")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the lab directory")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="namespace name prefix")
    parser.add_argument("--only", action="append", metavar="SCENARIO", help="run only these")
    args = parser.parse_args(argv)
    try:
        check_prefix(args.prefix)
    except ValueError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    if args.command == "run" and (problem := _unknown_scenarios(args.only or [])):
        # every argument is checked before anything is probed or built, on any machine
        print(f"lab: {problem}", file=sys.stderr)
        return 2
    why = namespaces_available(probe=args.command == "run")
    if why is not None:
        print(f"lab: {why}", file=sys.stderr)
        return 2
    if args.command == "clean":
        removed = remove_lab(args.prefix, args.dir)
        print(f"lab: removed {len(removed)} namespaces and {args.dir}")
        return 0
    return run(args.dir, args.prefix, args.only or [])


def _unknown_scenarios(only: list[str]) -> str | None:
    """What is wrong with `--only`, if anything (imported here: `clean` needs only the
    standard library, the scenarios need mailwarden)."""
    from .scenarios import SCENARIOS

    unknown = sorted(set(only) - {s.key for s in SCENARIOS})
    if not unknown:
        return None
    known = ", ".join(s.key for s in SCENARIOS)
    return f"no scenario {', '.join(unknown)} (there are: {known})"


def run(root: Path, prefix: str, only: list[str]) -> int:
    from .report import render, summary
    from .run import Lab, LabError, signals_raise
    from .scenarios import SCENARIOS, judge

    scenarios = [s for s in SCENARIOS if not only or s.key in only]
    started = time.monotonic()
    rows = []
    try:
        with signals_raise():
            print(f"lab: building the hosts under {root} ...", flush=True)
            with Lab(root, prefix) as lab:
                print(f"lab: ready in {time.monotonic() - started:.0f} s\n", flush=True)
                for index, scenario in enumerate(scenarios, 1):
                    observation = lab.send(scenario)
                    print("\n".join(render(observation, index, len(scenarios))), flush=True)
                    rows.append((scenario, *judge(observation)))
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130
    print("\n".join(summary(rows)))
    print(
        f"\nlab: {len(rows)} scenarios in {time.monotonic() - started:.0f} s; nothing is left "
        f"running. Logs and mailboxes stay in {root} (make lab-clean removes them)."
    )
    return 0 if all(not problems for _, _, problems in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
