"""Do two versions of mailwarden give the same verdicts? Every field of every verdict compared.

Run from the project root::

    git worktree add /tmp/base main       # or: git archive main src | tar -x -C /tmp/base
    python benchmarks/compare_verdicts.py /tmp/base/src src

Each version runs benchmarks/warm_profile.py (its own process, `PYTHONPATH` set to the given
source folder) on the same corpus (warm_profile's pickle: the keys are made once, so both
versions check the same signed messages) and writes every verdict's JSON, warm and cold; the
two lists must be equal, key by key. `--ignore KEY` leaves a key out wherever it occurs (none
by default: with one corpus, nothing in a verdict is random). Exit 0 when they agree, 1 with
the first differences printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def verdicts(
    src: str, corpus: Path, sizes: tuple[int, int], workdir: Path, label: str
) -> list[Any]:
    """Every verdict (warm, then cold) of the code in `src`, as JSON objects."""
    out = workdir / f"{label}.jsonl"
    env = {**os.environ, "PYTHONPATH": src}
    command = [
        sys.executable, str(HERE / "warm_profile.py"), "--corpus", str(corpus),
        "--messages", str(sizes[0]), "--domains", str(sizes[1]), "--dump", str(out), "--json",
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=3600)
    return [json.loads(line) for line in out.read_text().splitlines() if line]


def differences(left: Any, right: Any, ignore: frozenset[str], path: str = "") -> Iterator[str]:
    """Where `left` and `right` differ, as paths with both values."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if key in ignore:
                continue
            if key not in left or key not in right:
                yield f"{path}.{key}: only in {'right' if key not in left else 'left'}"
            else:
                yield from differences(left[key], right[key], ignore, f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from differences(a, b, ignore, f"{path}[{i}]")
    elif left != right:
        yield f"{path}: {left!r} != {right!r}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left", help="source folder of one version (holds mailwarden/)")
    parser.add_argument("right", help="source folder of the other")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument("--corpus", type=Path, help="warm_profile.py's corpus pickle")
    parser.add_argument("--ignore", action="append", default=[], help="a key left out")
    args = parser.parse_args(argv)
    corpus = args.corpus or Path(tempfile.gettempdir()) / (
        f"mailwarden-warm-profile-{args.domains}-{args.messages}.pickle"
    )
    with tempfile.TemporaryDirectory(prefix="compare-verdicts-") as name:
        workdir = Path(name)
        sizes = (args.messages, args.domains)
        left = verdicts(args.left, corpus, sizes, workdir, "left")
        right = verdicts(args.right, corpus, sizes, workdir, "right")
    if len(left) != len(right):
        print(f"{len(left)} verdicts against {len(right)}")
        return 1
    found = [
        f"verdict {i} ({a.get('mode')}){d}"
        for i, (a, b) in enumerate(zip(left, right, strict=True))
        for d in differences(a, b, frozenset(args.ignore))
    ]
    for line in found[:20]:
        print(line)
    print(f"{len(left)} verdicts compared: {len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
