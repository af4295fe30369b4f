"""Side-by-side benchmarks: aiobucket against aiobotocore, aioboto3, obstore, s3fs (and curl, cp).

    python benchmarks/run.py [--quick] [--only SCENARIO[,SCENARIO]] [--rounds N] [--baseline SRC]

Starts its own SeaweedFS on loopback (the test fixture's code), seeds it, then
runs every scenario for every library interleaved, round after round; each
measurement is a fresh subprocess (benchmarks/_worker.py) reporting throughput
and peak RSS. Prints the table and writes it to benchmarks/results/latest.md.

``--baseline SRC`` adds "aiobucket-baseline" to the S3 scenarios 1-5: the same
driver run on the aiobucket sources in SRC (say a checkout of main's ``src``),
interleaved with the rest, so a change is measured before and after in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks import _imports, _prepare, _report  # noqa: E402
from benchmarks._common import Env, GiB, KiB, MiB  # noqa: E402
from benchmarks._worker import WEB_SCENARIOS  # noqa: E402
from benchmarks.scenarios import bulk_delete, curl_cli, gcs, parallel_download  # noqa: E402

S3_LIBS = ["aiobucket", "aiobotocore", "aioboto3", "obstore", "s3fs"]
SCENARIOS: list[tuple[str, str, str, list[str]]] = [
    ("upload", "1", "stream {big} up from an async generator of 1 MiB chunks", [*S3_LIBS, "curl"]),
    ("download", "2", "stream {big} down into a discarding sink", [*S3_LIBS, "curl"]),
    ("put_small", "3", "{n} PUTs of 4 KiB, concurrency 64", S3_LIBS),
    ("get_small", "4", "{n} GETs of 4 KiB, concurrency 64", S3_LIBS),
    ("list", "5", "list {keys} keys under a prefix", S3_LIBS),
    ("local_write", "6", "local disk: write {big}", ["aiobucket", "aiofiles", "cp"]),
    ("local_read", "6", "local disk: read {big}", ["aiobucket", "aiofiles", "cp"]),
    ("import", "7", "import time (fresh interpreter)", list(_imports.MODULES)),
    ("memory_put", "8", "memory backend: sequential 4 KiB puts", ["aiobucket", "obstore"]),
    ("memory_get", "8", "memory backend: sequential 4 KiB gets", ["aiobucket", "obstore"]),
    ("delete_many", "9", "delete {keys} keys", bulk_delete.LIBS),
    ("download_parallel", "10", "{big} down in 8 ranges of 8 MiB at a time", parallel_download.STREAM_LIBS),
    ("download_to", "10", "{big} into a file, 8 ranges at a time", parallel_download.FILE_LIBS),
    ("gcs_upload", "11", "GCS: stream {gcs_big} up", gcs.LIBS),
    ("gcs_download", "11", "GCS: stream {gcs_big} down", gcs.LIBS),
    ("gcs_put_small", "11", "GCS: {n} PUTs of 4 KiB, concurrency 64", gcs.LIBS),
    ("gcs_get_small", "11", "GCS: {n} GETs of 4 KiB, concurrency 64", gcs.LIBS),
]
GCS_SCENARIOS = {"gcs_upload", "gcs_download", "gcs_put_small", "gcs_get_small"}
S3_SCENARIOS = {"upload", "download", "put_small", "get_small", "list"}
SERVER_SCENARIOS = {*S3_SCENARIOS, *WEB_SCENARIOS}
DEFAULT_PART, DEFAULT_CONCURRENCY = 8 * MiB, 8  # aiobucket's S3 defaults, for the RSS target


def _size(n: int) -> str:
    return f"{n // GiB} GiB" if n >= GiB and n % GiB == 0 else f"{n // MiB} MiB"


def select(only: str | None) -> list[tuple[str, str, str, list[str]]]:
    if not only:
        return SCENARIOS
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    chosen = [s for s in SCENARIOS if s[0] in wanted or s[1] in wanted]
    unknown = wanted - {s[0] for s in chosen} - {s[1] for s in chosen}
    if unknown:
        names = ", ".join(f"{s[1]}={s[0]}" for s in SCENARIOS)
        raise SystemExit(f"--only: unknown scenario(s) {sorted(unknown)}; known: {names}")
    return chosen


def server_cpu(proc: subprocess.Popen[bytes] | None) -> float | None:
    """CPU seconds (user + system, all threads) the S3 server process has used so far.

    The server shares the machine's cores with the client, so a request form that costs
    the server more lowers the client's throughput: this tells the two apart."""
    if proc is None:
        return None
    try:
        with open(f"/proc/{proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_worker(env: Env, timeout: float, pythonpath: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks._worker", json.dumps(dataclasses.asdict(env))]
    environ = None
    if pythonpath is not None:
        environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in [pythonpath, os.environ.get("PYTHONPATH")] if p),
        }
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environ)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    reported = [ln for ln in out.stdout.strip().splitlines() if ln.startswith("{")]
    if out.returncode != 0:
        if reported:  # measured and reported, then died on the way out: keep it, flag it
            return {**json.loads(reported[-1]), "exit": out.returncode}
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
        return {"error": f"exit {out.returncode}: {lines[-1] if lines else 'no output'}"}
    return dict(json.loads(reported[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks the harness works")
    ap.add_argument("--only", help="scenario numbers or names, comma-separated (e.g. 1,2 or list)")
    ap.add_argument("--rounds", type=int, help="rounds per scenario (default 3; 1 with --quick)")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "latest.md")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="aiobucket sources (a src directory) to measure as 'aiobucket-baseline' in scenarios 1-5",
    )
    args = ap.parse_args()
    scenarios = select(args.only)
    baseline: str | None = None
    if args.baseline is not None:
        if not (args.baseline / "aiobucket" / "__init__.py").is_file():
            raise SystemExit(
                f"--baseline: {args.baseline} holds no aiobucket package (give its src directory)"
            )
        baseline = str(args.baseline.resolve())
        s3 = {"upload", "download", "put_small", "get_small", "list"}
        scenarios = [
            (n, num, t, [*libs[:1], "aiobucket-baseline", *libs[1:]] if n in s3 else libs)
            for n, num, t, libs in scenarios
        ]
    rounds = args.rounds or (1 if args.quick else 3)
    if args.quick:
        sizes = {"big_size": 16 * MiB, "small_count": 200, "list_count": 200, "memory_ops": 2000}
    else:
        sizes = {"big_size": GiB, "small_count": 2000, "list_count": 20_000, "memory_ops": 20_000}
    names = {s[0] for s in scenarios}
    need_server = bool(names & SERVER_SCENARIOS)
    need_gcs = bool(names & GCS_SCENARIOS)
    gcs_big = 16 * MiB if args.quick else 256 * MiB
    need_disk = bool(names & {"local_write", "local_read"})

    from servers._proc import stop
    from servers.seaweedfs_server import start, weed_binary

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    t_start = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="aiobucket-bench-") as tmp,
        tempfile.TemporaryDirectory(
            prefix="aiobucket-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        ) as shm,
    ):
        work = Path(tmp)
        (work / "local").mkdir()
        source_file = Path(shm) / "source"
        _prepare.write_source_file(source_file, sizes["big_size"])
        proc = gcs_proc = None
        server_env: dict[str, Any] = {}
        try:
            gcs_extra: dict[str, Any] = {}
            if need_gcs:
                gcs_proc, gcs_endpoint = gcs.start(work)
                gcs_extra = {"gcs_endpoint": gcs_endpoint, "gcs_big_size": gcs_big}
            if need_server:
                (work / "weed").mkdir()
                proc, server = start(work / "weed")
                server_env = {
                    "endpoint": server.endpoint,
                    "region": server.region,
                    "access_key": server.access_key,
                    "secret_key": server.secret_key,
                    "bucket": server.bucket,
                }
            base = Env(
                scenario="", lib="", workdir=str(work / "local"), small_size=4 * KiB, **sizes, **server_env
            )
            base.extra = {"source_file": str(source_file), **gcs_extra}
            print(
                f"seeding ({'server' if need_server else ''}{' disk' if need_disk else ''}) ...", flush=True
            )
            _prepare.seed(base, source_file, server=need_server, disk=need_disk)
            if need_gcs:
                gcs.seed_sync(base)
            if "import" in names:  # compile every .pyc once before timing imports
                for lib in _imports.MODULES:
                    _imports.measure(lib)
            for rnd in range(rounds):
                for name, number, _, libs in scenarios:
                    shift = rnd % len(libs)
                    for lib in libs[shift:] + libs[:shift]:  # interleaved, order rotated per round
                        if name == "import":
                            reps = 1 if args.quick else 3
                            for _ in range(reps):
                                try:
                                    r = _imports.measure(lib)
                                except Exception as exc:
                                    r = {"error": str(exc)}
                                results.setdefault((name, lib), []).append(r)
                            continue
                        env = dataclasses.replace(base, scenario=name, lib=lib)
                        if lib == "curl" and not curl_cli.available():
                            r = {"error": curl_cli.INSTALL_HINT}
                        else:
                            before = server_cpu(proc) if name in S3_SCENARIOS else None
                            r = run_worker(env, 900, baseline if lib == "aiobucket-baseline" else None)
                            if before is not None and r.get("cpu_s"):
                                # The server's CPU over the worker, per the worker's unit of work.
                                spent = server_cpu(proc) - before
                                r["server_cpu_per"] = spent * r["cpu_per"] / r["cpu_s"]
                        results.setdefault((name, lib), []).append(r)
                        shown = f"{r['value']:,.1f} {r['unit']}" if "value" in r else f"ERROR {r['error']}"
                        print(
                            f"  round {rnd + 1}/{rounds}  {number} {name:<11} {lib:<12} {shown}", flush=True
                        )
        finally:
            if proc is not None:
                stop(proc)
            if gcs_proc is not None:
                stop(gcs_proc)
    elapsed = time.monotonic() - t_start
    load_after = os.getloadavg()

    titles = [
        (
            n,
            num,
            t.format(
                big=_size(sizes["big_size"]),
                gcs_big=_size(gcs_big),
                n=sizes["small_count"],
                keys=f"{sizes['list_count']:,}",
            ),
            libs,
        )
        for n, num, t, libs in scenarios
    ]
    table = _report.table(results, titles)
    checks = _report.targets_md(_report.targets(results, DEFAULT_PART, DEFAULT_CONCURRENCY))
    header = [
        f"# aiobucket benchmarks{' (--quick: harness check, not a measurement)' if args.quick else ''}",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, {rounds} round(s), {elapsed:.0f} s; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
        _report.machine(weed_binary()),
        "",
        'Medians over the rounds (import: over rounds \u00d7 3 runs). "aiobucket vs it" is how many times '
        "better aiobucket is (throughput ratio; for import time, the inverse); > 1 means aiobucket "
        "wins. Client CPU is the measuring process's time.process_time() (all its threads) over the "
        "operation, per op, per key or per GiB: steadier than wall time on a shared machine. "
        "Peak RSS is the measuring process's VmHWM, reset just before the operation (for curl "
        "and cp, the child's VmHWM sampled every 10 ms), the highest over the rounds; "
        '"peak - before" is its rise over the RSS just before the operation.',
        "",
    ]
    crashed = sorted(
        {
            f"{lib} ({name}, exit {r['exit']})"
            for (name, lib), runs in results.items()
            for r in runs
            if "exit" in r
        }
    )
    notes = ["", f"Measured, then exited abnormally (numbers kept): {', '.join(crashed)}."] if crashed else []
    server = _report.server_cpu_md(results, titles)
    text = "\n".join([*header, table, *notes, *server, "", "## Targets", "", checks, ""])
    print()
    print(text)
    failed = [k for k, runs in results.items() if any("error" in r for r in runs)]
    # A run with a failed row never replaces the last good table: it goes beside it.
    output = args.output.with_suffix(".failed.md") if failed else args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    if failed:
        print(f"FAILED: {failed}; the table is in {output}, {args.output} is unchanged", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
