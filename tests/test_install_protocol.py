"""wheelhouse._install_protocol: the messages between ``install`` and its workers.

Every message kind survives a trip through one line; every malformed line is refused with a
``ProtocolError`` naming the kind it claimed to be; and the real worker process, run by the
target interpreter without the ``wheelhouse`` package, holds a whole conversation in these
messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from wheelmaker import make_wheel, record_hash

from wheelhouse import _install_protocol as protocol

WORKER = Path(protocol.__file__).with_name("_install_worker.py")
DEBIAN_PYTHON = "/usr/bin/python3"

JOB = protocol.WheelJob(
    3, "/wh/caf\udce9-1.0-py3-none-any.whl", "café-1.0.whl", "ab" * 32, "café 1"
)
SAMPLES: list[protocol.Request | protocol.Answer] = [
    protocol.PlanRequest((JOB, protocol.WheelJob(0, "/b.whl", "b.whl", "00" * 32, "b 2"))),
    protocol.PlanRequest(()),
    protocol.InstallSetup("/tmp/.env-x", "/env", "#!/bin/sh\n'''exec' \"/env/bin/python\"", True),
    protocol.WheelTask(JOB, ("bin/x", "lib/y"), (("bin/tool", "#!/env/bin/python\nprint(1)\n"),)),
    protocol.WheelTask(JOB),
    protocol.Finish(),
    protocol.Hello(
        protocol.Facts("3.8.20", "3.8", "/usr/bin/python3.8", "cpython-38", "lib", "55")
    ),
    protocol.Planned(
        (
            protocol.WheelSummary(
                index=3,
                name="cafe",
                version="1.0",
                requires_python=">=3.8",
                sha256="ab" * 32,
                dist_info="cafe-1.0.dist-info",
                entry_points="[console_scripts]\nx = cafe:main\n",
                files=(("lib/python3.8/site-packages/cafe/__init__.py", "sha256=47DE"),),
                cost=100_000,
                warnings=("cafe-1.0.whl: skipped 'x/__pycache__/y.pyc'",),
            ),
            protocol.WheelSummary(0, "b", "2", "", "00" * 32, "b-2.dist-info", None, (), 0, ()),
        )
    ),
    protocol.Installed(0),
    protocol.Done(10, 4, ("a warning",), {"plan": 0.5, "cpu": 1.25}, (1.0, 0.5, 3.0)),
    protocol.Failed("RecordError", "w.whl: member 'x\\n' is not listed"),
]
REQUESTS = set(typing.get_args(protocol.Request))


def _decode(line: bytes, request: bool) -> protocol.Request | protocol.Answer:
    return protocol.decode_request(line) if request else protocol.decode_answer(line)


def test_every_message_kind_has_samples() -> None:
    kinds = set(typing.get_args(protocol.Request)) | set(typing.get_args(protocol.Answer))
    assert {type(m) for m in SAMPLES} == kinds


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_each_message_is_one_line_and_comes_back_equal(
    message: protocol.Request | protocol.Answer,
) -> None:
    line = protocol.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert _decode(line, type(message) in REQUESTS) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_requests_and_answers_are_not_mistaken_for_each_other(
    message: protocol.Request | protocol.Answer,
) -> None:
    """A program that echoes its input (``--python /bin/cat``) must not pass for a worker."""
    with pytest.raises(protocol.ProtocolError):
        _decode(protocol.encode(message), type(message) not in REQUESTS)


def _line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _plain(message: protocol.Request | protocol.Answer) -> dict[str, Any]:
    """A message as the JSON object on the wire, to break."""
    obj = json.loads(protocol.encode(message))
    assert isinstance(obj, dict)
    return obj


FACTS = _plain(SAMPLES[6])["hello"]["facts"]
SUMMARY = _plain(SAMPLES[7])["plan"]["wheels"][0]
DONE = _plain(SAMPLES[9])["done"]
BAD_ANSWERS: dict[str, tuple[bytes, str | None]] = {
    "text": (b"error: forged\n", None),
    "not utf-8": (b'{"installed": "\xff"}\n', None),
    "nested too deep": (b"[" * 100_000, None),
    "a list": (_line([1, 2]), None),
    "no known kind": (_line({"nope": 1}), None),
    "two kinds": (_line({"installed": 1, "error": {"kind": "x", "message": "y"}}), None),
    "hello is a number": (_line({"hello": 42}), "hello"),
    "hello without magic": (_line({"hello": {"facts": {**FACTS, "magic": None}}}), "hello"),
    "hello with a field too many": (_line({"hello": {"facts": FACTS, "x": 1}}), "hello"),
    "installed true": (_line({"installed": {"index": True}}), "installed"),
    "installed without index": (_line({"installed": {}}), "installed"),
    "plan not a list": (_line({"plan": {"wheels": {}}}), "plan"),
    "files not pairs": (
        _line({"plan": {"wheels": [{**SUMMARY, "files": [["a", "b", 1]]}]}}),
        "plan",
    ),
    "entry points a number": (
        _line({"plan": {"wheels": [{**SUMMARY, "entry_points": 5}]}}),
        "plan",
    ),
    "cost a float": (_line({"plan": {"wheels": [{**SUMMARY, "cost": 1.5}]}}), "plan"),
    "rusage not numbers": (_line({"done": {**DONE, "rusage": ["x"]}}), "done"),
    "seconds a list": (_line({"done": {**DONE, "seconds": [1]}}), "done"),
    "error without message": (_line({"error": {"kind": "Boom"}}), "error"),
}


TASK = _plain(SAMPLES[3])
BAD_REQUESTS: dict[str, tuple[bytes, str | None]] = {
    "no op": (_line({"wheels": []}), None),
    "unknown op": (_line({"op": "explode"}), None),
    "op a number": (_line({"op": 1}), None),
    "wheels not a list": (_line({"op": "plan", "wheels": "a.whl"}), "plan"),
    "wheel index a string": (
        _line({"op": "plan", "wheels": [{**TASK["wheel"], "index": "0"}]}),
        "plan",
    ),
    "compile a string": (
        _line({**_plain(SAMPLES[2]), "compile": "yes"}),
        "install",
    ),
    "skip not strings": (_line({**TASK, "skip": [1]}), "wheel"),
    "no wheel": (_line({**TASK, "wheel": None}), "wheel"),
    "a field too many": (_line({"op": "finish", "now": True}), "finish"),
    "a field missing": (_line({k: v for k, v in TASK.items() if k != "skip"}), "wheel"),
}


@pytest.mark.parametrize(
    ("case", "request_"),
    [(c, False) for c in sorted(BAD_ANSWERS)] + [(c, True) for c in sorted(BAD_REQUESTS)],
)
def test_malformed_lines_are_refused(case: str, request_: bool) -> None:
    """Refused with the kind the line claimed to be, so ``install`` can say what was wrong."""
    line, kind = (BAD_REQUESTS if request_ else BAD_ANSWERS)[case]
    with pytest.raises(protocol.ProtocolError) as info:
        _decode(line, request_)
    assert info.value.kind == kind


# --- the real worker ---------------------------------------------------------------------------

PYTHONS = [sys.executable] + ([DEBIAN_PYTHON] if os.path.exists(DEBIAN_PYTHON) else [])


class Conversation:
    """The worker script run as ``install`` runs it: by the target interpreter, ``-S -B``, with
    no ``PYTHON*`` variables, so it imports the protocol module as a top-level module."""

    def __init__(self, python: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.proc = subprocess.Popen(
            [python, "-S", "-B", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def say(self, message: protocol.Request) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(protocol.encode(message))
        self.proc.stdin.flush()

    def hear(self) -> protocol.Answer:
        assert self.proc.stdout is not None
        return protocol.decode_answer(self.proc.stdout.readline())

    def end(self) -> int:
        _out, err = self.proc.communicate(timeout=60)
        assert err == b""
        return self.proc.returncode


def _job(wheel: Path, sha256: str | None = None) -> protocol.WheelJob:
    digest = sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()
    return protocol.WheelJob(0, str(wheel), wheel.name, digest, "pkg 1.0")


@pytest.mark.parametrize("python", PYTHONS)
def test_the_worker_holds_a_whole_conversation(tmp_path: Path, python: str) -> None:
    source = "def main():\n    print('hi')\n"
    wheel = make_wheel(tmp_path / "w", "pkg", "1.0", {"pkg/__init__.py": source})
    talk = Conversation(python)
    hello = talk.hear()
    assert isinstance(hello, protocol.Hello)
    short = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert hello.facts.short == short
    site = f"lib/python{short}/site-packages"

    job = _job(wheel)
    talk.say(protocol.PlanRequest((job,)))
    planned = talk.hear()
    assert isinstance(planned, protocol.Planned) and len(planned.wheels) == 1
    summary = planned.wheels[0]
    assert (summary.index, summary.name, summary.version) == (0, "pkg", "1.0")
    assert summary.sha256 == job.sha256 and summary.dist_info == "pkg-1.0.dist-info"
    assert (f"{site}/pkg/__init__.py", record_hash(source.encode())) in summary.files

    root = tmp_path / "root"
    root.mkdir()
    talk.say(protocol.InstallSetup(str(root), "/opt/env", "#!/opt/env/bin/python", True))
    script = "#!/opt/env/bin/python\nimport pkg\npkg.main()\n"
    talk.say(protocol.WheelTask(job, (), (("bin/pkg-tool", script),)))
    assert talk.hear() == protocol.Installed(0)
    talk.say(protocol.Finish())
    done = talk.hear()
    assert isinstance(done, protocol.Done) and done.pycs == 1 and done.warnings == ()
    assert talk.end() == 0
    assert (root / site / "pkg/__init__.py").read_text() == source
    assert (root / "bin/pkg-tool").read_text() == script
    assert list((root / site / "pkg/__pycache__").glob(f"__init__.{hello.facts.cache_tag}.pyc"))


def test_the_worker_answers_a_bad_wheel_with_failed(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "pkg", "1.0")
    talk = Conversation(sys.executable)
    assert isinstance(talk.hear(), protocol.Hello)
    talk.say(protocol.PlanRequest((_job(wheel, sha256="0" * 64),)))
    failed = talk.hear()
    assert isinstance(failed, protocol.Failed) and failed.kind == "HashMismatchError"
    assert str(wheel) in failed.message and "pkg 1.0" in failed.message
    assert talk.end() == 1


def test_the_worker_reports_a_request_it_cannot_read_as_a_bug(tmp_path: Path) -> None:
    talk = Conversation(sys.executable)
    assert isinstance(talk.hear(), protocol.Hello)
    assert talk.proc.stdin is not None
    talk.proc.stdin.write(b'{"op": "plan", "wheels": [1]}\n')
    talk.proc.stdin.flush()
    failed = talk.hear()
    assert isinstance(failed, protocol.Failed) and failed.kind == "bug"
    assert "ProtocolError" in failed.message
    assert talk.end() == 1
