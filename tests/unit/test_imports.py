"""Every module imports on its own, first, in a fresh interpreter state: no import cycle
hides behind the order in which the test suite happens to import things (a cycle once
broke `auton8n serve` while every test passed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import importlib, pkgutil, sys, traceback, warnings
warnings.simplefilter("ignore")  # a module imported anew may warn about what it redefines
failed = []
names = []
for package in ("server", "client", "bench"):
    root = importlib.import_module(package)
    names.append(package)
    names += [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
for name in names:
    if ".migrations." in name or name.endswith(".__main__"):
        continue  # Alembic revision scripts run inside Alembic; __main__ runs the program
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("server", "client", "bench")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\n" + traceback.format_exc(limit=3))
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
