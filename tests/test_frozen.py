"""mailwarden.frozen.quick_init: the same frozen dataclass, built without object.__setattr__."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest

from mailwarden.authres.model import Property, ResInfo
from mailwarden.dkim.result import DKIMResult
from mailwarden.dkim.signature import Signature
from mailwarden.dmarc import DMARCResult
from mailwarden.frozen import quick_init
from mailwarden.pipeline.results import MessageVerdict
from mailwarden.policy.engine import Facts, Verdict
from mailwarden.symbols import Symbol


@dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "b"
    c: tuple[int, ...] = field(default_factory=tuple)
    d: list[int] = field(default_factory=list)
    e: int = field(default=5, kw_only=True)


@quick_init
@dataclass(frozen=True, slots=True)
class _Quick:
    a: int
    b: str = "b"
    c: tuple[int, ...] = field(default_factory=tuple)
    d: list[int] = field(default_factory=list)
    e: int = field(default=5, kw_only=True)


def _values(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((1, "x", (2,), [3]), {"e": 9}), ((), {"a": 2, "d": [1]})],
)
def test_the_same_fields_as_the_dataclass_init(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    assert _values(_Quick(*args, **kwargs)) == _values(_Plain(*args, **kwargs))


def test_the_same_signature_and_errors() -> None:
    plain = inspect.signature(_Plain.__init__)
    quick = inspect.signature(_Quick.__init__)
    assert [(p.name, p.kind) for p in list(quick.parameters.values())[1:]] == [
        (p.name, p.kind) for p in list(plain.parameters.values())[1:]
    ]
    with pytest.raises(TypeError):
        _Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Quick(1, "b", (), [], 5)  # type: ignore[misc]  # e is keyword-only


def test_a_fresh_default_each_time_and_still_frozen() -> None:
    one, two = _Quick(1), _Quick(1)
    assert one.d is not two.d  # default_factory called per instance
    assert one == two
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.a = 2  # type: ignore[misc]
    assert dataclasses.replace(one, a=3).a == 3
    assert pickle.loads(pickle.dumps(one)) == one


@pytest.mark.parametrize(
    "cls",
    [Property, ResInfo, DKIMResult, DMARCResult, Signature, MessageVerdict, Facts, Verdict, Symbol],
)
def test_the_hot_classes_use_it(cls: type) -> None:
    assert "__dataclass_self__" in inspect.signature(cls.__init__).parameters
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"


def test_it_refuses_what_it_would_get_wrong() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int = field(default=1, init=False)

    for cls in (NoSlots, NotFrozen, PostInit, NotInInit):
        with pytest.raises(TypeError):
            quick_init(cls)
