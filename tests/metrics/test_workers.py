"""Several worker processes: with `use_worker_processes` called before forking, each worker
counts into its own file and the exposition of any process is the sum over all of them; a
worker that ended stops counting in the live gauges. Run in a fresh interpreter (the mode is
process-wide) that forks real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from mailwarden import metrics

    metrics.use_worker_processes(Path(sys.argv[1]))
    children = []
    for worker in range(3):
        pid = os.fork()
        if pid == 0:
            for _ in range(worker + 1):
                metrics.transaction("reject", "data", 550, "5.7.1")
            metrics.stage_seconds("data", 0.002)
            metrics.connection_opened("gateway")
            if worker == 2:  # a worker that ends with its connection counted
                os._exit(0)
            metrics.connection_closed("gateway")
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    before = metrics.exposition()[0].decode()
    for pid in children:
        metrics.worker_exited(pid)
    after = metrics.exposition()[0].decode()
    print(before)
    print("=====")
    print(after)
    """
)


def run_script(script: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter (no multi-process directory inherited); it must succeed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_figures_of_forked_workers_are_added_up(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"stale")  # an earlier run's file goes
    done = run_script(SCRIPT, directory)
    before, after = done.stdout.split("=====")
    # 1 + 2 + 3 transactions from three processes
    line = 'mailwarden_transactions_total{action="reject",code="550",enhanced="5.7.1",stage="data"}'
    assert f"{line} 6.0" in before
    assert 'mailwarden_stage_seconds_count{stage="data"} 3.0' in before
    assert 'mailwarden_open_connections{frontend="gateway"} 1.0' in before
    assert 'mailwarden_open_connections{frontend="gateway"}' not in after or (
        'mailwarden_open_connections{frontend="gateway"} 0.0' in after
    )
    assert f"{line} 6.0" in after  # counters survive their worker
    assert not (directory / "counter_99999.db").exists()


BACK = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from mailwarden import metrics

    metrics.transaction("accept", "data", 250, "2.0.0")
    metrics.use_worker_processes(Path(sys.argv[1]))
    metrics.transaction("reject", "data", 550, "5.7.1")
    metrics.use_one_process()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    metrics.transaction("reject", "data", 550, "5.7.1")
    metrics.connection_opened("gateway")
    print(metrics.exposition()[0].decode())
    """
)


def test_back_to_one_process_counts_in_memory_again(tmp_path: Path) -> None:
    """After its workers, a launcher that goes on (an in-process `serve --workers`) counts in
    memory again: new metrics work, and only what was counted since is shown."""
    directory = tmp_path / "metrics"
    done = run_script(BACK, directory)
    line = 'mailwarden_transactions_total{action="reject",code="550",enhanced="5.7.1",stage="data"}'
    assert f"{line} 1.0" in done.stdout
    assert 'mailwarden_open_connections{frontend="gateway"} 1.0' in done.stdout
    assert 'action="accept"' not in done.stdout  # forgotten with the mode change
    assert list(directory.glob("*.db"))  # the worker-mode figure stays in its file
