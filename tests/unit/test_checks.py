"""Parsers on real output captured from the pinned toolchain (tests/fixtures/tool_output,
produced in /tmp/auton8n-capture/ws by tsc 5.9.3, biome 2.6.8 and vitest 4.1.12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.domain.results import Diagnostic, TestCase, TestResults
from server.domain.spec import ActionSpec, PluginSpec
from server.domain.states import Phase
from server.pipeline.checks import (
    excerpt,
    failure_diagnostics,
    parse_biome,
    parse_tsc,
    parse_vitest,
    strip_ansi,
    validate_static,
)

OUTPUT = Path(__file__).resolve().parent.parent / "fixtures" / "tool_output"
CAPTURED_IN = Path("/tmp/auton8n-capture/ws")


def fixture(name: str) -> str:
    return (OUTPUT / name).read_text()


def test_tsc_errors_with_multi_line_messages() -> None:
    found = parse_tsc(fixture("tsc_errors.txt"), CAPTURED_IN)
    assert [(d.file, d.line, d.column, d.code) for d in found] == [
        ("src/bad.ts", 3, 14, "TS2322"),
        ("src/bad.ts", 4, 25, "TS2307"),
        ("src/bad.ts", 6, 55, "TS2353"),
        ("src/bad.ts", 8, 7, "TS6133"),
    ]
    first = found[0]
    assert first.phase is Phase.BUILDING
    assert first.message.splitlines() == [
        "Type '(a: string) => string' is not assignable to type '(a: number) => string'.",
        "  Types of parameters 'a' and 'a' are incompatible.",
        "    Type 'number' is not assignable to type 'string'.",
    ]
    assert found[1].message == (
        "Cannot find module './missing' or its corresponding type declarations."
    )
    assert found[3].render() == (
        "src/bad.ts:8:7 TS6133 'unused' is declared but its value is never read."
    )


def test_tsc_global_and_config_errors() -> None:
    found = parse_tsc(fixture("tsc_config_errors.txt"), CAPTURED_IN)
    assert [(d.file, d.line, d.code) for d in found] == [
        ("", 0, "TS18003"),
        ("tsconfig.json", 1, "TS5023"),
    ]
    assert "No inputs were found" in found[0].message


def test_tsc_clean_output_and_noise() -> None:
    assert parse_tsc("") == []
    assert parse_tsc("Version 5.9.3\n") == []


def test_biome_json_report_errors_only_by_default() -> None:
    report = fixture("biome_report.json")
    found = parse_biome(report, CAPTURED_IN)
    assert [(d.file, d.line, d.column, d.code) for d in found] == [
        ("src/lint.ts", 2, 3, "lint/suspicious/noDebugger"),
        ("src/lint.ts", 3, 15, "lint/suspicious/noDoubleEquals"),
    ]
    assert found[0].message == "This is an unexpected use of the debugger statement."
    assert all(d.phase is Phase.LINTING for d in found)
    with_warnings = parse_biome(report, min_severity="warning")
    assert "lint/suspicious/noExplicitAny" in {d.code for d in with_warnings}


def test_biome_whole_file_format_finding() -> None:
    report = {
        "summary": {"errors": 1},
        "diagnostics": [
            {
                "severity": "error",
                "message": "Formatter would have printed the following content:",
                "category": "format",
                "location": {"path": "src/x.ts", "start": {"line": 0, "column": 0}},
                "advices": [],
            }
        ],
        "command": "check",
    }
    (found,) = parse_biome(json.dumps(report))
    assert (found.file, found.line, found.code) == ("src/x.ts", 0, "format")
    assert "not formatted" in found.message


def test_biome_rejects_what_is_not_its_report() -> None:
    with pytest.raises(ValueError):
        parse_biome(fixture("biome_stdout.txt"))
    with pytest.raises(ValueError):
        parse_biome('{"summary": {}}')


def test_vitest_failures_names_messages_and_load_errors() -> None:
    results = parse_vitest(fixture("vitest_failures.json"), CAPTURED_IN)
    assert (results.passed, results.failed, results.skipped) == (5, 4, 1)
    by_name = {c.name: c for c in results.cases}
    numbers = by_name["failing > compares numbers"]
    assert numbers.status == "failed"
    assert numbers.file == "src/__tests__/failing.test.ts"
    assert numbers.message.startswith("AssertionError: expected 2 to be 3 // Object.is equality")
    assert " at " not in numbers.message  # stack frames dropped
    nested = by_name["failing > nested > compares objects"]
    assert "to deeply equal { a: 1, b: [ 1, 3 ] }" in nested.message
    assert by_name["failing > throws"].message == "Error: boom\nsecond line"
    assert by_name["failing > skipped one"].status == "skipped"
    assert by_name["plugin-time > GET_TIME > returns an ISO timestamp"].status == "passed"
    broken = by_name["src/__tests__/broken.test.ts (test file failed to run)"]
    assert broken.status == "failed"
    assert broken.message == (
        "Cannot find module '../nope' imported from src/__tests__/broken.test.ts"
    )


def test_vitest_passing_report() -> None:
    results = parse_vitest(fixture("vitest_pass.json"), CAPTURED_IN)
    assert (results.passed, results.failed, results.total) == (4, 0, 4)
    assert failure_diagnostics(results) == []


def test_vitest_failure_messages_lose_ansi_and_are_capped() -> None:
    report = json.loads(fixture("vitest_failures.json"))
    assertion = report["testResults"][1]["assertionResults"][0]
    assertion["failureMessages"] = [
        "\x1b[31mAssertionError\x1b[39m: expected \x1b[32m2\x1b[39m\n"
        + "\n".join(f"line {i}" for i in range(100))
    ]
    results = parse_vitest(json.dumps(report))
    case = next(c for c in results.cases if c.message.startswith("AssertionError"))
    assert case.message.splitlines()[0] == "AssertionError: expected 2"
    assert "\x1b" not in case.message
    assert len(case.message.splitlines()) == 12


def test_vitest_rejects_other_json() -> None:
    with pytest.raises(ValueError):
        parse_vitest(fixture("biome_report.json"))


def test_failure_diagnostics_carry_name_and_assertion() -> None:
    results = TestResults(
        passed=1,
        failed=1,
        cases=(
            TestCase("a > works", "passed", file="src/a.test.ts"),
            TestCase("a > fails", "failed", "expected 1 to be 2", file="src/a.test.ts"),
        ),
    )
    assert failure_diagnostics(results) == [
        Diagnostic(
            Phase.TESTING, "a > fails: expected 1 to be 2", file="src/a.test.ts", code="test"
        )
    ]


SPEC = PluginSpec(name="@acme/plugin-time", actions=(ActionSpec("GET_TIME"),))
EXPECTED = {"src/index.ts": "timePlugin", "src/actions/getTime.ts": "getTimeAction"}
GOOD = {
    "src/index.ts": (
        'import { getTimeAction } from "./actions/getTime";\n'
        "const timePlugin = { name: 'x', actions: [getTimeAction] };\n"
        "export { timePlugin, getTimeAction };\nexport default timePlugin;\n"
    ),
    "src/actions/getTime.ts": "export const getTimeAction = { name: 'GET_TIME' };\n",
}


def test_static_validation_passes() -> None:
    assert validate_static(SPEC, GOOD, EXPECTED) == ([], 100)
    assert validate_static(SPEC, GOOD, lambda spec: EXPECTED) == ([], 100)


@pytest.mark.parametrize(
    "declaration",
    [
        "export const getTimeAction = {};",
        "export class getTimeAction {}",
        "export async function getTimeAction() {}",
        "const getTimeAction = 1;\nexport {\n  other,\n  getTimeAction,\n};",
        "export { x as getTimeAction };",
    ],
)
def test_export_forms(declaration: str) -> None:
    files = {**GOOD, "src/actions/getTime.ts": declaration}
    assert validate_static(SPEC, files, EXPECTED) == ([], 100)


def test_static_validation_missing_file_and_export() -> None:
    files = {"src/index.ts": "export const somethingElse = 1;\n"}
    found, score = validate_static(SPEC, files, EXPECTED)
    assert score == 0
    assert {(d.file, d.code) for d in found} == {
        ("src/index.ts", "validate"),
        ("src/actions/getTime.ts", "validate"),
    }
    assert any("missing file" in d.message for d in found)
    assert any("does not export 'timePlugin'" in d.message for d in found)


@pytest.mark.parametrize(
    "body",
    [
        "// TODO: call the API",
        "/* FIXME */",
        "throw new Error('Not implemented');",
        'throw new Error("not yet implemented")',
    ],
)
def test_stub_bodies_are_findings(body: str) -> None:
    files = {
        **GOOD,
        "src/actions/getTime.ts": f"export const getTimeAction = () => {{\n{body}\n}};",
    }
    found, score = validate_static(SPEC, files, EXPECTED)
    assert score == 90
    (finding,) = found
    assert (finding.file, finding.line, finding.phase) == (
        "src/actions/getTime.ts",
        2,
        Phase.VALIDATING,
    )


def test_excerpt_keeps_the_end_without_ansi() -> None:
    assert excerpt("\x1b[31merror\x1b[0m") == "error"
    long = "start\n" + "x" * 10_000 + "\nthe reason"
    cut = excerpt(long, limit=100)
    assert cut.endswith("the reason") and cut.startswith("[...]") and len(cut) < 120
    assert strip_ansi("\x1b[1m\x1b[31mbold\x1b[39m\x1b[22m") == "bold"
