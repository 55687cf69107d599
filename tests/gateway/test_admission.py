"""Connection limits shared by worker processes (`SharedAdmission`): a model check in one
process (each worker's column by `bind`), and a real fork."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.gateway.admission import SharedAdmission

ADDRESSES = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "198.51.100.7", "unix", ""]

steps = st.lists(
    st.tuples(
        st.sampled_from(["admit", "release", "forget"]),
        st.integers(0, 2),
        st.sampled_from(ADDRESSES),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps, total=st.integers(1, 6), per_client=st.integers(1, 4))
def test_counts_follow_a_model_and_never_pass_the_limits(
    steps: list[tuple[str, int, str]], total: int, per_client: int
) -> None:
    shared = SharedAdmission(3, total, per_client)
    held: list[Counter[str]] = [Counter(), Counter(), Counter()]  # what each worker admitted
    for action, worker, ip in steps:
        shared.bind(worker)
        if action == "admit":
            everyone = sum(sum(c.values()) for c in held)
            this_client = sum(c[ip] for c in held)
            refusal = shared.admit(ip)
            if refusal is None:
                held[worker][ip] += 1
                assert everyone < total
                assert this_client < per_client
            elif refusal == "total":
                assert everyone >= total
            else:  # a shared bucket may refuse early, never late
                assert this_client >= per_client or shared.client(ip) >= per_client
        elif action == "release" and held[worker][ip] > 0:
            shared.release(ip)
            held[worker][ip] -= 1
        elif action == "forget":
            shared.forget(worker)
            held[worker].clear()
        assert shared.total() == sum(sum(c.values()) for c in held)
        assert shared.total() <= total
    for ip in ADDRESSES:
        assert shared.client(ip) >= sum(c[ip] for c in held)


def test_bind_is_checked() -> None:
    shared = SharedAdmission(2, 10, 10)
    with pytest.raises(RuntimeError):
        shared.admit("192.0.2.1")
    with pytest.raises(ValueError, match="out of range"):
        shared.bind(2)
    with pytest.raises(ValueError, match="at least one"):
        SharedAdmission(0, 1, 1)


def _fill(shared: SharedAdmission, index: int, count: int, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    shared.bind(index)
    done.put(sum(shared.admit("192.0.2.9") is None for _ in range(count)))


def test_forked_workers_share_the_counts() -> None:
    """Two forked processes admitting from one address together get exactly the limit, and
    the supervisor's `forget` of one gives its share back."""
    shared = SharedAdmission(2, 100, 5)
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    procs = [context.Process(target=_fill, args=(shared, i, 5, done)) for i in range(2)]
    for proc in procs:
        proc.start()
    admitted = [done.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert sum(admitted) == 5
    assert shared.client("192.0.2.9") == 5
    shared.forget(0)
    shared.forget(1)
    assert shared.total() == 0
    shared.bind(0)
    assert shared.admit("192.0.2.9") is None
