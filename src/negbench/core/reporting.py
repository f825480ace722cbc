"""How every entry point reports a failure: one line on stderr, never a traceback for bad input.

Exit codes: 2 = bad input or environment (a NegbenchError, or a file that cannot be
read/written: a results folder that is a file, a read-only folder, a full disk); 130 =
interrupted. `--verbose` (NEGBENCH_DEBUG=1) shows the traceback too.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from negbench.core.errors import NegbenchError

EXIT_BAD_INPUT = 2
log = logging.getLogger("negbench")


def run_reporting_errors(prog: str, fn: Callable[[], int | None], verbose: bool = False) -> int:
    verbose = verbose or os.environ.get("NEGBENCH_DEBUG") == "1"
    try:
        return int(fn() or 0)
    except NegbenchError as err:
        message = str(err).replace("\n", " ")
    except OSError as err:  # not a bug of ours: the file system said no
        where = f" {err.filename}" if err.filename else ""
        message = f"cannot access{where}: {err.strerror or err}"
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; completed outputs are kept and a rerun resumes "
              f"(training: with --resume)", file=sys.stderr)
        return 130
    if verbose:
        log.exception("details")
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
