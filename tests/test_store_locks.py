"""A process that opens the store twice (a worker's heartbeat thread, the app's screens) keeps
its SQLite locks: another process closing its last connection must never take the database
for itself and remove the WAL under a live connection (which corrupts the store)."""

import subprocess
import sys

from hybtui.config import RunConfig
from hybtui.runs.store import Store

CLOSE_ANOTHER_CONNECTION = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM runs").fetchone()
conn.close()  # the last connection of this process: SQLite checkpoints and removes the WAL if it may
"""


def test_a_second_store_in_one_process_leaves_the_first_ones_locks_held(tmp_path):
    first = Store(tmp_path)
    first.create_run(RunConfig(model="tiny"))  # the WAL now holds a transaction
    wal = first.db_path.with_name("hybtui.db-wal")
    assert wal.stat().st_size > 0
    second = Store(tmp_path)  # opening reads nothing of the file outside SQLite while `first` is open
    subprocess.run([sys.executable, "-c", CLOSE_ANOTHER_CONNECTION, str(first.db_path)], check=True)
    assert wal.exists() and wal.stat().st_size > 0, "another process removed the WAL of a live connection"
    first.create_run(RunConfig(model="tiny"))
    assert first.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(second.list_runs()) == 2
    second.close()
    first.close()
    first.close()  # closing twice is harmless
