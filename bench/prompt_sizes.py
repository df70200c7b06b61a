"""Prompt sizes: a repair prompt for a one-file error vs a full regeneration prompt.

For each acceptance spec (examples/*.json), the plugin is the template's output and the
error is one TS2322 in the first action's file. Compared, per request:

- the system part (static instructions + the job's plugin block): identical in both,
  sent with prompt caching (after the first call it is read from the cache at ~10% of
  the input price);
- the message: the repair message (the diagnostic, the involved file and src/index.ts,
  the other files by name) vs a full regeneration message (the task, every current file
  and the diagnostic: what resending the whole plugin costs).

Run: ``.venv/bin/python bench/prompt_sizes.py``. ``tests/unit/test_model_prompts.py``
asserts the repair message is at most a third of the full one, with and without the
cached system part weighted by its price.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.domain.results import Diagnostic  # noqa: E402
from server.domain.spec import PluginSpec  # noqa: E402
from server.domain.states import Phase  # noqa: E402
from server.generators import prompts  # noqa: E402
from server.generators.template import expected_exports, render_plugin  # noqa: E402

SPECS = ("time", "weather", "shell", "astral")
CACHE_READ_SHARE = 0.1  # a cached input token costs about a tenth of a fresh one


@dataclass(frozen=True)
class Sizes:
    spec: str
    system: int  # chars, cached
    repair: int  # chars of the repair message
    full: int  # chars of the full regeneration message

    @property
    def message_ratio(self) -> float:
        return self.repair / self.full

    @property
    def weighted_ratio(self) -> float:
        cached = CACHE_READ_SHARE * self.system
        return (cached + self.repair) / (cached + self.full)

    @property
    def total_ratio(self) -> float:
        return (self.system + self.repair) / (self.system + self.full)


def one_file_error(spec: PluginSpec, files: dict[str, str]) -> Diagnostic:
    path = next(p for p in sorted(expected_exports(spec)) if p != "src/index.ts")
    line = next(i for i, text in enumerate(files[path].splitlines(), 1) if "export" in text)
    return Diagnostic(
        Phase.BUILDING,
        "Type 'string' is not assignable to type 'boolean'.",
        file=path,
        line=line,
        column=9,
        code="TS2322",
        iteration=1,
    )


def measure(name: str) -> Sizes:
    spec = PluginSpec.from_json(json.loads((ROOT / "examples" / f"{name}.json").read_text()))
    files = render_plugin(spec)
    diagnostic = one_file_error(spec, files)
    system = len(prompts.STATIC_SYSTEM) + len(prompts.plugin_block(spec))
    repair = prompts.repair_prompt(spec, 2, files, [diagnostic])
    full = "\n\n".join(
        [
            prompts.generation_prompt(spec),
            "## Current files",
            prompts.render_files(files),
            "## Problems",
            prompts.render_diagnostics([diagnostic]),
        ]
    )
    return Sizes(name, system, len(repair), len(full))


def main() -> None:
    header = (
        f"{'spec':8} {'system':>7} {'repair':>7} {'full':>7} {'msg':>6} {'cached':>7} {'total':>6}"
    )
    print(header)
    for name in SPECS:
        s = measure(name)
        print(
            f"{s.spec:8} {s.system:7d} {s.repair:7d} {s.full:7d} {s.message_ratio:6.2f} "
            f"{s.weighted_ratio:7.2f} {s.total_ratio:6.2f}"
        )
    print("chars; ratios repair/full: message only, system weighted as cached, system in full")


if __name__ == "__main__":
    main()
