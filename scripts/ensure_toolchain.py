"""Install the shared plugin toolchain into a folder (once per lockfile hash)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from server.pipeline.toolchain import Toolchain


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/toolchain")
    started = time.monotonic()
    path = asyncio.run(Toolchain(target).ensure())
    print(f"toolchain ready at {path} ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
