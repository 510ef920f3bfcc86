"""`python benchmarks/_peak_rss.py ARGS` runs `clpipe ARGS` (flows.cli) in this process and, at
exit, writes the process's peak resident set size (VmHWM, in kB) to the file named by
$CLPIPE_PEAK_RSS_FILE: the driver's own peak, not its children's (Prefect's temporary server,
Ray's workers)."""

from __future__ import annotations

import atexit
import os
import runpy
import sys
from pathlib import Path


def _record() -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(os.environ["CLPIPE_PEAK_RSS_FILE"]).write_text(line.split()[1])


if __name__ == "__main__":
    atexit.register(_record)
    sys.argv = ["clpipe", *sys.argv[1:]]
    runpy.run_module("flows.cli", run_name="__main__", alter_sys=True)
