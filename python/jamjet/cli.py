"""The ``jamjet`` command: the same command line as the Rust binary."""

from __future__ import annotations

import sys

from . import _native


def main(argv: list[str] | None = None) -> int:
    """Run the ``jamjet`` command line; returns (and exits with) its code."""
    args = ["jamjet", *(sys.argv[1:] if argv is None else argv)]
    code = _native.cli_main(args)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
