"""Run-store throughput: metric ingestion with one and four writer processes (a reader
polling incrementally all the while), and `hybtui runs ls` over 10,000 runs.

    python benchmarks/store_bench.py

On stores it fills itself (no data directory needed). Writes benchmarks/results/store_bench.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from environment import machine, write_result  # same folder

from hybtui.config import RunConfig
from hybtui.runs.store import Store

ROWS_PER_WRITER = 20_000
BATCH = 50  # metrics per transaction, about what a worker flushes each second


def _writer(path: str, run_id: str, writer: int, go, done) -> None:
    with Store(path) as store:
        go.wait()
        t0 = time.perf_counter()
        for start in range(0, ROWS_PER_WRITER, BATCH):
            store.add_metrics(run_id, [(f"w{writer}", step, float(step)) for step in range(start, start + BATCH)])
        done.put(time.perf_counter() - t0)


def ingestion(writers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "store")
        with Store(path) as store:
            run_id = store.create_run(RunConfig(), status="running")
        go, done = mp.Event(), mp.Queue()
        procs = [mp.Process(target=_writer, args=(path, run_id, w, go, done)) for w in range(writers)]
        for p in procs:
            p.start()
        seen, last = 0, 0
        with Store(path) as reader:
            t0 = time.perf_counter()
            go.set()
            while any(p.is_alive() for p in procs) or seen < writers * ROWS_PER_WRITER:
                rows = reader.metrics_since(run_id, last)
                if rows:
                    seen += len(rows)
                    last = rows[-1]["id"]
                time.sleep(0.05)
            wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        assert seen == writers * ROWS_PER_WRITER, (seen, writers)
    return {"writers": writers, "rows": seen, "seconds": round(wall, 2), "points_per_s": round(seen / wall)}


def runs_ls(n: int = 10_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        with Store(path) as store:
            config = RunConfig()
            t0 = time.perf_counter()
            with store.db.conn:  # one transaction for the fixture, not for the measurement
                rows = [
                    {
                        "id": f"run-{i:06d}",
                        "name": None,
                        "config": config.to_json(),
                        "status": "finished",
                        "created_at": 1.7e9 + i,
                        "step": 1000,
                        "total_steps": 1000,
                    }
                    for i in range(n)
                ]
                store.db.table("runs").insert_all(rows)
            fill = time.perf_counter() - t0
        timings = {}
        for args in (["runs", "ls", "--json"], ["runs", "ls", "--limit", "50"]):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hybtui", *args, "--store", str(path)], check=True, capture_output=True
            )
            timings[" ".join(args)] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import hybtui.cli.app"], check=True)
        timings["python start-up + import (baseline)"] = round(time.perf_counter() - t0, 2)
        with Store(path) as store:
            t0 = time.perf_counter()
            store.list_runs()
            timings["Store.list_runs() in-process"] = round(time.perf_counter() - t0, 3)
    return {"runs": n, "fixture_s": round(fill, 2), "wall_s": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store_bench.json")
    args = parser.parse_args()
    result = {
        "command": "python benchmarks/store_bench.py",
        "batch": BATCH,
        "ingestion": [ingestion(1), ingestion(4)],
        "runs_ls": runs_ls(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_result(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
