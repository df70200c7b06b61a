"""Parsers of the tools' output and the static validation: pure functions.

Formats were captured from the pinned toolchain (tests/fixtures/tool_output):

- tsc 5.9 ``--pretty false``: ``file(line,col): error TS1234: message`` with the
  elaboration chain on following lines indented by two spaces per level; global
  errors as ``error TS18003: message``.
- biome 2.6 ``--reporter=json`` (marked experimental by biome, exact-pinned here):
  ``{"summary": {...}, "diagnostics": [{"severity", "message", "category",
  "location": {"path", "start": {"line", "column"}}}]}``; 1-based lines, 0 for
  whole-file findings (formatting).
- vitest 4.1 ``--reporter=json``: jest-compatible ``testResults[].assertionResults[]``
  with ``ancestorTitles``, ``title``, ``status``, ``failureMessages``; a file that fails
  to load has ``status: failed``, a ``message`` and no assertion results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from server.domain.results import Diagnostic, TestCase, TestResults
from server.domain.spec import PluginSpec
from server.domain.states import Phase

__all__ = [
    "excerpt",
    "failure_diagnostics",
    "parse_biome",
    "parse_tsc",
    "parse_vitest",
    "strip_ansi",
    "validate_static",
]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_TSC_LOCATED = re.compile(
    r"^(?P<file>[^\s(][^(]*)\((?P<line>\d+),(?P<col>\d+)\): (?:error|warning) "
    r"(?P<code>TS\d+): (?P<msg>.*)$"
)
_TSC_GLOBAL = re.compile(r"^(?:error|warning) (?P<code>TS\d+): (?P<msg>.*)$")
_STACK_FRAME = re.compile(r"^\s+at .*$|^\s*\u276f .*$")
_MAX_FAILURE_LINES = 12
_MAX_FAILURE_CHARS = 1500
_SEVERITY_RANK = {"hint": 0, "information": 1, "info": 1, "warning": 2, "error": 3, "fatal": 4}

# Stub markers: a TODO/FIXME comment, or a body that says it is not implemented.
_STUBS = (
    (re.compile(r"\b(?:TODO|FIXME|XXX)\b"), "TODO/FIXME marker"),
    (re.compile(r"not\s+(?:yet\s+)?implemented", re.IGNORECASE), "'not implemented' stub"),
)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def excerpt(text: str, limit: int = 4000) -> str:
    """The end of a command's output (where tools put the reason), ANSI stripped."""
    clean = strip_ansi(text).strip()
    if len(clean) <= limit:
        return clean
    return "[...]\n" + clean[-limit:]


def _relative(path: str, workspace: Path | None) -> str:
    path = path.strip()
    if workspace is not None and path.startswith("/"):
        try:
            return Path(path).relative_to(workspace).as_posix()
        except ValueError:
            return path
    return path


def parse_tsc(output: str, workspace: Path | None = None) -> list[Diagnostic]:
    """tsc ``--pretty false`` output -> diagnostics; continuation lines are joined."""
    found: list[Diagnostic] = []
    current: dict[str, Any] | None = None

    def flush() -> None:
        if current is not None:
            found.append(Diagnostic(phase=Phase.BUILDING, **current))

    for raw in strip_ansi(output).splitlines():
        line = raw.rstrip()
        if m := _TSC_LOCATED.match(line):
            flush()
            current = {
                "file": _relative(m["file"], workspace),
                "line": int(m["line"]),
                "column": int(m["col"]),
                "code": m["code"],
                "message": m["msg"],
            }
        elif m := _TSC_GLOBAL.match(line):
            flush()
            current = {"code": m["code"], "message": m["msg"]}
        elif current is not None and line.startswith(" ") and line.strip():
            current["message"] += "\n" + line
        else:
            flush()
            current = None
    flush()
    return found


def parse_biome(
    report: str, workspace: Path | None = None, *, min_severity: str = "error"
) -> list[Diagnostic]:
    """biome ``--reporter=json`` -> diagnostics at or above ``min_severity``.

    Raises ValueError if the report is not biome's JSON.
    """
    data = json.loads(report)
    if not isinstance(data, dict) or not isinstance(data.get("diagnostics"), list):
        raise ValueError("not a biome JSON report")
    threshold = _SEVERITY_RANK[min_severity]
    found: list[Diagnostic] = []
    for item in data["diagnostics"]:
        if not isinstance(item, dict):
            continue
        if _SEVERITY_RANK.get(str(item.get("severity", "error")), 3) < threshold:
            continue
        location = item.get("location") or {}
        start = location.get("start") or {}
        category = str(item.get("category") or "lint")
        message = str(item.get("message") or "").strip()
        if category == "format":
            message = "file is not formatted as biome would format it"
        found.append(
            Diagnostic(
                phase=Phase.LINTING,
                file=_relative(str(location.get("path") or ""), workspace),
                line=int(start.get("line") or 0),
                column=int(start.get("column") or 0),
                code=category,
                message=message,
            )
        )
    return found


def _failure_message(messages: list[str], workspace: Path | None) -> str:
    text = strip_ansi("\n".join(messages))
    if workspace is not None:
        text = text.replace(f"{workspace}/", "")
    lines = [ln for ln in text.splitlines() if not _STACK_FRAME.match(ln)]
    kept = "\n".join(lines[:_MAX_FAILURE_LINES]).strip()
    return kept[:_MAX_FAILURE_CHARS]


def parse_vitest(report: str, workspace: Path | None = None) -> TestResults:
    """vitest ``--reporter=json`` output file -> TestResults.

    Test names are ``describe > nested > it``; a file that failed to load becomes one
    failed case named after the file. Raises ValueError if it is not such a report.
    """
    data = json.loads(report)
    if not isinstance(data, dict) or not isinstance(data.get("testResults"), list):
        raise ValueError("not a vitest JSON report")
    cases: list[TestCase] = []
    for suite in data["testResults"]:
        file = _relative(str(suite.get("name") or ""), workspace)
        assertions = suite.get("assertionResults") or []
        for a in assertions:
            raw = str(a.get("status") or "")
            status = raw if raw in ("passed", "failed") else "skipped"
            name = " > ".join([*map(str, a.get("ancestorTitles") or []), str(a.get("title"))])
            cases.append(
                TestCase(
                    name=name,
                    status=status,
                    message=_failure_message(list(a.get("failureMessages") or []), workspace)
                    if status == "failed"
                    else "",
                    file=file,
                    duration_ms=float(a.get("duration") or 0.0),
                )
            )
        message = str(suite.get("message") or "")
        if suite.get("status") == "failed" and (message or not assertions):
            cases.append(
                TestCase(
                    name=f"{file} (test file failed to run)",
                    status="failed",
                    message=_failure_message([message or "the test file failed"], workspace),
                    file=file,
                )
            )
    return TestResults(
        passed=sum(c.status == "passed" for c in cases),
        failed=sum(c.status == "failed" for c in cases),
        skipped=sum(c.status == "skipped" for c in cases),
        cases=tuple(cases),
    )


def failure_diagnostics(results: TestResults) -> list[Diagnostic]:
    """One diagnostic per failing test: its full name and assertion message."""
    return [
        Diagnostic(
            phase=Phase.TESTING,
            file=case.file,
            code="test",
            message=f"{case.name}: {case.message}" if case.message else case.name,
        )
        for case in results.cases
        if case.status == "failed"
    ]


def _exports(source: str, name: str) -> bool:
    n = re.escape(name)
    declared = re.compile(
        rf"^\s*export\s+(?:declare\s+)?(?:default\s+)?(?:async\s+)?"
        rf"(?:const|let|var|function\*?|class|abstract\s+class|interface|type|enum)\s+{n}\b",
        re.MULTILINE,
    )
    listed = re.compile(rf"export\s+(?:type\s+)?\{{[^}}]*\b{n}\b[^}}]*\}}", re.DOTALL)
    return bool(declared.search(source) or listed.search(source))


def validate_static(
    spec: PluginSpec,
    files: Mapping[str, str],
    expected_exports: Mapping[str, str] | Callable[[PluginSpec], Mapping[str, str]],
) -> tuple[list[Diagnostic], int]:
    """Every spec component's file exists and exports its name; no stub bodies.

    ``expected_exports`` is ``{path: exported name}`` (or a function of the spec giving
    it). Score (0-100): the share of expected exports found, minus 10 per stub finding.
    """
    expected = expected_exports(spec) if callable(expected_exports) else expected_exports
    found: list[Diagnostic] = []
    ok = 0
    for path, name in sorted(expected.items()):
        source = files.get(path)
        if source is None:
            found.append(_invalid(f"missing file (it must export {name!r})", path))
        elif not _exports(source, name):
            found.append(_invalid(f"does not export {name!r}", path))
        else:
            ok += 1
    stubs = 0
    for path, source in sorted(files.items()):
        if not (path.startswith("src/") and path.endswith(".ts")):
            continue
        for number, line in enumerate(source.splitlines(), start=1):
            for pattern, what in _STUBS:
                if pattern.search(line):
                    stubs += 1
                    found.append(_invalid(f"{what}: {line.strip()[:200]}", path, number))
                    break
    share = ok / len(expected) if expected else 1.0
    score = max(0, min(100, round(100 * share) - 10 * stubs))
    return found, score


def _invalid(message: str, path: str, line: int = 0) -> Diagnostic:
    return Diagnostic(
        phase=Phase.VALIDATING, message=message, file=path, line=line, code="validate"
    )
