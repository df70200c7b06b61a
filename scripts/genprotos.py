"""Generate the Python gRPC code for protos/ into an output folder (default: protos/).

Used by `make protos` and by the test that proves the committed code is current.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def include_dirs() -> list[Path]:
    """protos/, grpc_tools' well-known types and googleapis-common-protos (google/rpc)."""
    import grpc_tools
    from google.rpc import status_pb2

    return [
        PROTOS,
        Path(grpc_tools.__file__).parent / "_proto",
        Path(status_pb2.__file__).parent.parent.parent,
    ]


def generate(out: Path) -> None:
    from grpc_tools import protoc

    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = [
        "protoc",
        *(f"-I{d}" for d in include_dirs()),
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTOS)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
