"""The results table (markdown), the target checks and the machine description."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

Results = Mapping[tuple[str, str], Sequence[Mapping[str, Any]]]

LOWER_IS_BETTER = {"import"}
X = "\u00d7"  # the multiplication sign, for ratios like 1.30x


def median(runs: Sequence[Mapping[str, Any]]) -> float | None:
    values = [r["value"] for r in runs if "value" in r]
    return statistics.median(values) if values else None


def ratio(results: Results, scenario: str, lib: str) -> float | None:
    """How many times better aiobucket is than ``lib`` (> 1: aiobucket wins)."""
    ours, theirs = median(results.get((scenario, "aiobucket"), [])), median(results.get((scenario, lib), []))
    if not ours or not theirs:
        return None
    return theirs / ours if scenario in LOWER_IS_BETTER else ours / theirs


def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def cpu_cell(runs: Sequence[Mapping[str, Any]], unit: str) -> str:
    """Median client CPU (time.process_time, all threads) per op, per key or per GiB."""
    per = [r["cpu_per"] for r in runs if r.get("cpu_per") is not None]
    if not per:
        return "—"
    v = statistics.median(per)
    if unit == "MiB/s":
        return f"{v:.2f} s/GiB"
    return f"{v * 1e6:,.0f} µs/{'key' if unit == 'keys/s' else 'op'}"


def server_cpu_md(results: Results, scenarios: Sequence[tuple[str, str, str, Sequence[str]]]) -> list[str]:
    """The SeaweedFS server's CPU per unit of each S3 run (median): a client whose requests
    cost the server more loses throughput on a shared machine without spending more itself."""
    rows = []
    for name, number, title, libs in scenarios:
        for lib in libs:
            runs = [r for r in results.get((name, lib), []) if r.get("server_cpu_per") is not None]
            if runs:
                unit = next((r["unit"] for r in runs if "unit" in r), "")
                cell = cpu_cell([{"cpu_per": r["server_cpu_per"]} for r in runs], unit)
                rows.append(f"| {number} | {title} | {lib} | {cell} |")
    if not rows:
        return []
    return [
        "",
        "## Server CPU",
        "",
        "SeaweedFS's CPU time (user + system, all threads, from /proc) over each measurement, per",
        "op, key or GiB, median over the rounds; it includes the worker's warm-up GET.",
        "",
        "| # | scenario | library | server CPU |",
        "|---|---|---|---:|",
        *rows,
    ]


def table(results: Results, scenarios: Sequence[tuple[str, str, str, Sequence[str]]]) -> str:
    lines = [
        "| # | scenario | library | median | unit | aiobucket vs it | client CPU | peak RSS MiB"
        " | peak - before MiB | runs |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, number, title, libs in scenarios:
        for lib in libs:
            runs = results.get((name, lib), [])
            ok = [r for r in runs if "value" in r]
            errors = [r["error"] for r in runs if "error" in r]
            med = median(runs)
            unit = ok[0]["unit"] if ok else ""
            peak = max((r["peak_mib"] for r in ok if r.get("peak_mib") is not None), default=None)
            deltas = [r["delta_mib"] for r in ok if r.get("delta_mib") is not None]
            rat = ratio(results, name, lib)
            cell = _fmt(med, 0 if med and med >= 100 else 1) if not errors else f"FAILED ({errors[0][:60]})"
            lines.append(
                f"| {number} | {title} | {lib} | {cell} | {unit} | "
                f"{'—' if rat is None else f'{rat:.2f}{X}'} | {cpu_cell(ok, unit)} | {_fmt(peak, 0)} | "
                f"{_fmt(max(deltas) if deltas else None, 0)} | {len(ok)} |"
            )
    return "\n".join(lines)


def targets(results: Results, part_size: int, concurrency: int) -> list[tuple[str, bool | None, str]]:
    """(target, met?, detail) for every target of the issue; met is None when not measured."""
    out: list[tuple[str, bool | None, str]] = []

    def at_least(label: str, scenario: str, lib: str, want: float) -> None:
        r = ratio(results, scenario, lib)
        out.append((label, None if r is None else r >= want, "not measured" if r is None else f"{r:.2f}{X}"))

    for sc, n in (("upload", 1), ("download", 2)):
        at_least(f"{n} {sc}: ≥ 1.0{X} obstore", sc, "obstore", 1.0)
        at_least(f"{n} {sc}: ≥ 1.3{X} aioboto3", sc, "aioboto3", 1.3)
        at_least(f"{n} {sc}: ≥ 0.9{X} curl ceiling", sc, "curl", 0.9)
    limit = part_size * (concurrency + 1) / 2**20 + 80
    ours = [r["peak_mib"] for r in results.get(("upload", "aiobucket"), []) if "peak_mib" in r]
    if ours:
        out.append((f"1 peak RSS ≤ {limit:.0f} MiB", max(ours) <= limit, f"{max(ours):.0f} MiB"))
    else:
        out.append((f"1 peak RSS ≤ {limit:.0f} MiB", None, "not measured"))
    for sc, n in (("put_small", 3), ("get_small", 4)):
        at_least(f"{n} {sc}: ≥ 1.0{X} obstore", sc, "obstore", 1.0)
        at_least(f"{n} {sc}: ≥ 3{X} aioboto3", sc, "aioboto3", 3.0)
        at_least(f"{n} {sc}: ≥ 1.0{X} raw aiobotocore", sc, "aiobotocore", 1.0)
    at_least(f"5 list: ≥ 0.8{X} obstore", "list", "obstore", 0.8)
    for lib in ("aiobotocore", "aioboto3", "s3fs"):
        at_least(f"5 list: ≥ 1.0{X} {lib}", "list", lib, 1.0)
    at_least(f"6 local write: ≥ 0.8{X} cp", "local_write", "cp", 0.8)
    at_least(f"6 local read: ≥ 0.8{X} cp", "local_read", "cp", 0.8)
    at_least(f"11 GCS get_small: ≥ 1.5{X} gcloud-aio-storage", "gcs_get_small", "gcloud-aio-storage", 1.5)
    imp = median(results.get(("import", "aiobucket"), []))
    out.append(("7 import aiobucket ≤ 100 ms", None if imp is None else imp <= 100, f"{_fmt(imp)} ms"))
    for lib in ("aioboto3", "obstore"):
        r = ratio(results, "import", lib)
        out.append(
            (f"7 import below {lib}", None if r is None else r > 1.0, "—" if r is None else f"{r:.2f}{X}")
        )
    return out


def targets_md(rows: list[tuple[str, bool | None, str]]) -> str:
    mark = {True: "met", False: "**missed**", None: "—"}
    lines = ["| target | result | aiobucket vs peer |", "|---|---|---:|"]
    lines += [f"| {label} | {mark[ok]} | {detail} |" for label, ok, detail in rows]
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "not installed"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine(weed: str | None) -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    libs = ", ".join(
        f"{d} {_version(d)}"
        for d in (
            "aiobucket",
            "aiobotocore",
            "botocore",
            "aiohttp",
            "aioboto3",
            "obstore",
            "s3fs",
            "aiofiles",
        )
    )
    return "\n".join(
        [
            f"- Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}; a shared VM, client and server on the same host (loopback)",
            f"- Python {platform.python_version()} ({platform.python_implementation()})",
            f"- Libraries: {libs}",
            f"- Server: SeaweedFS `weed mini` ({_first_line([weed, 'version']) if weed else '?'}); "
            f"{_first_line(['curl', '--version'])}",
        ]
    )
