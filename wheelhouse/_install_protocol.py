"""The messages ``wheelhouse.install`` and its worker processes (``_install_worker.py``) exchange.

Both sides build and read messages only through the dataclasses here, whose fields are the wire
format, so neither can send a field the other does not read: ``encode`` turns a message into one
JSON line (a request ``{"op": <kind>, <fields>}``, an answer ``{<kind>: {<fields>}}``);
``decode_request`` (the worker's side) and ``decode_answer`` (the main process's side) turn a
line back into a message, checking every field against its annotation and refusing missing or
unknown ones with ``ProtocolError``. The main process relies on that: the "worker" may be a
program that is not Python at all and prints anything (``install --python /bin/cat``).

Standard library only, Python 3.8 syntax: the worker runs on the *target* interpreter
(``python -S -B _install_worker.py``) and imports this file as the top-level module
``_install_protocol``, as it does ``_safefs``; wheelhouse imports it as
``wheelhouse._install_protocol``.

The conversation, one JSON document per line on the worker's stdin and stdout:

1. worker -> ``Hello``: facts about the interpreter (version, real path, cache tag).
2. main -> ``PlanRequest``: the wheels this worker reads and validates; worker -> ``Planned``:
   for each wheel, every destination path with its RECORD hash. Nothing is written yet, so the
   main process can detect conflicts between wheels first.
3. main -> ``InstallSetup`` (where to write, the scripts' shebang, whether to compile), then one
   ``WheelTask`` per wheel to install, each answered ``Installed``.
4. main -> ``Finish``: worker -> ``Done`` (counts, warnings, timings) and exits.

Any failure is answered with ``Failed`` (a ``wheelhouse.errors`` class name and its message, or
``bug`` and a traceback) and the worker exits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union

if TYPE_CHECKING:  # only in annotations: Python 3.8 cannot subscript collections.abc.Callable
    from _typeshed import DataclassInstance

    _Check = Callable[[Any], Any]

__all__ = [
    "Answer",
    "Done",
    "Facts",
    "Failed",
    "Finish",
    "Hello",
    "InstallSetup",
    "Installed",
    "PlanRequest",
    "Planned",
    "ProtocolError",
    "Request",
    "WheelJob",
    "WheelSummary",
    "WheelTask",
    "decode_answer",
    "decode_request",
    "encode",
]


class ProtocolError(ValueError):
    """A line that is not a message of this protocol, or a message with a malformed field.

    Lives here rather than in ``wheelhouse.errors`` because the worker imports this module
    without the ``wheelhouse`` package; users never see it: ``wheelhouse.install`` turns it
    into an ``InstallError`` naming the interpreter that said it.

    ``kind`` is the message kind the line claimed to be (``hello``, ``plan``...), None when it
    is no message at all.
    """

    def __init__(self, why: str, kind: str | None = None) -> None:
        super().__init__(why)
        self.kind = kind


# --- main process -> worker -------------------------------------------------------------------


@dataclass(frozen=True)
class WheelJob:
    """One wheel file to read, and what its bytes must be: the lock's sha256, and who it is
    for (``package version``, for messages)."""

    index: int
    path: str
    filename: str
    sha256: str
    label: str


@dataclass(frozen=True)
class PlanRequest:
    """Read and validate these wheels, keep them in memory, answer ``Planned``."""

    wheels: tuple[WheelJob, ...]

    KIND = "plan"


@dataclass(frozen=True)
class InstallSetup:
    """Install below ``root`` (the staging directory of ``prefix``); ``shebang`` replaces
    ``#!python`` in scripts; ``compile`` asks for bytecode."""

    root: str
    prefix: str
    shebang: str
    compile: bool

    KIND = "install"


@dataclass(frozen=True)
class WheelTask:
    """Install one wheel (planned by this worker, or by another one: then it is read again).

    ``skip``: destinations another wheel writes with identical content (verified and listed
    in RECORD, not written again); ``scripts``: generated entry-point scripts (dest, text).
    """

    wheel: WheelJob
    skip: tuple[str, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()

    KIND = "wheel"


@dataclass(frozen=True)
class Finish:
    """No more wheels: answer ``Done`` and exit."""

    KIND = "finish"


Request = Union[PlanRequest, InstallSetup, WheelTask, Finish]  # noqa: UP007 - run by 3.8 too
_REQUESTS: dict[str, type[Request]] = {
    c.KIND: c for c in (PlanRequest, InstallSetup, WheelTask, Finish)
}


# --- worker -> main process -------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """The target interpreter: ``version`` ``3.11.2``, ``short`` ``3.11``, its real path, the
    cache tag and magic number of its bytecode, and ``sys.platlibdir``."""

    version: str
    short: str
    executable: str
    cache_tag: str
    platlibdir: str
    magic: str


@dataclass(frozen=True)
class Hello:
    """The worker's first line, before it reads anything."""

    facts: Facts

    KIND = "hello"


@dataclass(frozen=True)
class WheelSummary:
    """One planned wheel: what METADATA says, and every file it installs.

    ``files`` are (destination relative to the prefix, RECORD hash ``algo=digest``); ``cost``
    is a rough number of nanoseconds the install takes, for scheduling.
    """

    index: int
    name: str
    version: str
    requires_python: str
    sha256: str
    dist_info: str
    entry_points: str | None
    files: tuple[tuple[str, str], ...]
    cost: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Planned:
    """The answer to ``PlanRequest``: one summary per wheel, in the order asked."""

    wheels: tuple[WheelSummary, ...]

    KIND = "plan"


@dataclass(frozen=True)
class Installed:
    """The answer to ``WheelTask``: wheel ``index`` is written."""

    index: int

    KIND = "installed"


@dataclass(frozen=True)
class Done:
    """The answer to ``Finish``: files and ``.pyc`` files written, warnings, and (for
    ``WHEELHOUSE_INSTALL_DEBUG``) seconds spent per step and ``getrusage`` figures."""

    files: int
    pycs: int
    warnings: tuple[str, ...]
    seconds: dict[str, float]
    rusage: tuple[float, ...]

    KIND = "done"


@dataclass(frozen=True)
class Failed:
    """The worker's last answer when something failed: ``kind`` is a ``wheelhouse.errors``
    class name (``InstallError``, ``RecordError``...), or ``bug`` with a traceback."""

    kind: str
    message: str

    KIND = "error"


Answer = Union[Hello, Planned, Installed, Done, Failed]  # noqa: UP007 - run by 3.8 too
_ANSWERS: dict[str, type[Answer]] = {c.KIND: c for c in (Hello, Planned, Installed, Done, Failed)}


# --- fields <-> JSON ----------------------------------------------------------------------------


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass as a JSON object (``json.dumps`` calls this for each one it meets and
    writes the tuples in its fields as arrays itself)."""
    if not is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"not a message: {value!r:.60}")
    return {f.name: getattr(value, f.name) for f in fields(value)}


def _exactly(kind: type) -> _Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:  # JSON gives exact types: an int is no bool, nor a float
            raise ProtocolError(f"{value!r:.60} is not {kind.__name__}")
        return value

    return check


def _float(value: Any) -> float:
    if type(value) not in (int, float):
        raise ProtocolError(f"{value!r:.60} is not a number")
    return float(value)


def _tuple_of(item: _Check) -> _Check:
    def check(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise ProtocolError(f"{value!r:.60} is not a list")
        return tuple(item(v) for v in value)

    return check


def _str_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """Pairs of strings: a wheel's files, thousands per plan, so checked in one pass."""
    if type(value) is not list or not all(
        type(p) is list and len(p) == 2 and type(p[0]) is str and type(p[1]) is str for p in value
    ):
        raise ProtocolError(f"{value!r:.60} is not a list of pairs of strings")
    return tuple(map(tuple, value))


def _optional(item: _Check) -> _Check:
    return lambda value: None if value is None else item(value)


def _str_to_float(value: Any) -> dict[str, float]:
    if type(value) is not dict:
        raise ProtocolError(f"{value!r:.60} is not an object")
    return {k: _float(v) for k, v in value.items()}


_D = TypeVar("_D", bound="DataclassInstance")


def _from_plain(cls: type[_D], value: Any) -> _D:
    """An instance of dataclass ``cls`` from a JSON object holding exactly its fields."""
    if type(value) is not dict:
        raise ProtocolError(f"{value!r:.60} is not an object")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ProtocolError(f"unknown field {unknown[0]!r}")
    kwargs = {}
    for f in fields(cls):
        if f.name not in value:
            raise ProtocolError(f"field {f.name!r} is missing")
        try:
            kwargs[f.name] = _CHECKS[str(f.type)](value[f.name])
        except ProtocolError as e:
            raise ProtocolError(f"field {f.name!r}: {e}") from None
    return cls(**kwargs)


_STR = _exactly(str)
_CHECKS: dict[str, _Check] = {
    # a field's annotation, as written above (a string: ``from __future__ import annotations``)
    "int": _exactly(int),
    "bool": _exactly(bool),
    "str": _STR,
    "str | None": _optional(_STR),
    "tuple[str, ...]": _tuple_of(_STR),
    "tuple[tuple[str, str], ...]": _str_pairs,
    "tuple[float, ...]": _tuple_of(_float),
    "dict[str, float]": _str_to_float,
}


def _nested(cls: type[DataclassInstance]) -> _Check:
    return lambda value: _from_plain(cls, value)


for _cls in (WheelJob, Facts, WheelSummary):
    _CHECKS[_cls.__name__] = _nested(_cls)
    _CHECKS[f"tuple[{_cls.__name__}, ...]"] = _tuple_of(_nested(_cls))
_unchecked = [
    f"{cls.__name__}.{f.name}: {f.type}"
    for cls in (WheelJob, Facts, WheelSummary, *_REQUESTS.values(), *_ANSWERS.values())
    for f in fields(cls)
    if str(f.type) not in _CHECKS
]
assert not _unchecked, f"fields whose type cannot be decoded: {_unchecked}"


# --- lines ------------------------------------------------------------------------------------


def encode(message: Request | Answer) -> bytes:
    """One line of JSON (ASCII: paths that are not UTF-8 travel as escaped surrogates)."""
    obj: dict[str, Any]
    if _REQUESTS.get(message.KIND) is type(message):
        obj = {"op": message.KIND, **_fields(message)}
    else:
        obj = {message.KIND: message}
    return json.dumps(obj, separators=(",", ":"), default=_fields).encode("ascii") + b"\n"


def _load(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, nested too deep
        raise ProtocolError(f"not JSON ({e})") from None
    if type(obj) is not dict:
        raise ProtocolError("not a JSON object")
    return obj


def decode_request(line: bytes) -> Request:
    """The message the main process sent in ``line``."""
    obj = _load(line)
    op = obj.pop("op", None)
    cls = _REQUESTS.get(op) if type(op) is str else None
    if cls is None:
        raise ProtocolError(f"no known 'op' ({op!r:.60})")
    try:
        return _from_plain(cls, obj)
    except ProtocolError as e:
        raise ProtocolError(f"{op!r}: {e}", op) from None


def decode_answer(line: bytes) -> Answer:
    """The message a worker sent in ``line``: one key naming its kind, holding its fields."""
    obj = _load(line)
    if len(obj) != 1:
        raise ProtocolError(f"an object with {len(obj)} keys")
    kind, body = next(iter(obj.items()))
    cls = _ANSWERS.get(kind)
    if cls is None:
        raise ProtocolError(f"no known kind ({kind!r:.60})")
    try:
        return _from_plain(cls, body)
    except ProtocolError as e:
        raise ProtocolError(f"{kind!r}: {e}", kind) from None
