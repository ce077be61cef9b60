"""Start a command detached, print its pid, exit: the launcher's short-lived intermediate.

Run as ``python -I -S detach.py LOG COMMAND...`` (standard library only, so isolated mode is
fine). The command starts in its own session (its own process group, which a cancel
signals), with stdin from /dev/null and stdout/stderr appended to LOG. This process exits
at once, so the command's parent becomes init, which reaps it: whoever launches workers
(the app, `hybtui reproduce` while it watches, a worker starting the next run) waits only
for this intermediate and never leaves a `<defunct>` worker behind.
"""

import os
import subprocess
import sys


def main() -> None:
    log, command = sys.argv[1], sys.argv[2:]
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    sys.stdout.write(f"{worker.pid}\n")
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: nothing here may wait for the worker


if __name__ == "__main__":
    main()
