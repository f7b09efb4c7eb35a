"""The figures of a run as (label, value) rows, in the words RESULTS.md uses."""

from __future__ import annotations

from typing import Any

from benchmarks.dataset import DataSetPlan

QIDO_LABELS = {
    "patient_id": "PatientID",
    "patient_name_wildcard": "PatientName wildcard (3 letters*), limit 50",
    "study_date_range": "StudyDate 30-day range, limit 50",
    "modalities_in_study": "ModalitiesInStudy, limit 25, offset 0-175",
    "studies_page": "all studies, limit 25, random offset",
    "series_of_study": "series of a study",
    "instances_of_series": "instances of a series",
}


def title(result: dict[str, Any]) -> str:
    name = result["name"]
    if name == "baselines":
        return "Machine baselines"
    if name.startswith("index-"):
        plan = result["plan"]
        backend = result["options"]["server"]
        return f"QIDO-RS on a {plan['instances']:,}-instance index, our server, {backend} backend"
    server = result["options"].get("server")
    if server and server != "None":
        return f"All scenarios, our server, {server} backend"
    describe = result["options"].get("describe")
    if describe and describe != "None":
        return f"All scenarios, {describe.split(' (')[0].rstrip(',')}"
    return f"All scenarios, {result['target']}"


def failures(result: dict[str, Any]) -> int:
    """Count failed requests, and instances that a STOW-RS response reported as not stored."""
    summaries = [summary for summary in result.get("results", {}).values() if isinstance(summary, dict)]
    return sum(summary.get("failures", 0) + summary.get("instances_failed", 0) for summary in summaries)


def run_figures(result: dict[str, Any], plan: DataSetPlan) -> list[tuple[str, str]]:
    results = result["results"]
    figures: list[tuple[str, str]] = []
    if "stow" in results:
        stow = results["stow"]
        context = (
            f"{stow['clients']} clients, {stow['instances_per_request']} instances per request, "
            f"{stow['instance_size_mb']} MB each"
        )
        figures += [
            (f"STOW-RS instances/s ({context})", _number(stow.get("instances_per_second"))),
            ("STOW-RS MB/s", _number(stow.get("mb_per_second"))),
            ("STOW-RS request latency median / p99", _latency(stow)),
        ]
    if "qido" in results:
        figures += qido_figures(results["qido"], f"{plan.instances:,} instances in {plan.studies} studies")
    if "metadata" in results:
        metadata = results["metadata"]
        figures += [
            (
                f"Study metadata ({plan.series_per_study * plan.instances_per_series} instances) requests/s, "
                f"{metadata['clients']} clients",
                _number(metadata.get("requests_per_second")),
            ),
            ("Study metadata latency median / p99", _latency(metadata)),
        ]
    if "wado" in results:
        wado = results["wado"]
        figures += [
            (
                f"WADO-RS whole study (multipart, stored syntax) MB/s, {wado['clients']} clients",
                _number(wado.get("mb_per_second")),
            ),
            ("WADO-RS study latency median / p99", _latency(wado)),
        ]
    if "frames" in results:
        frames = results["frames"]
        figures += [
            (
                f"Frames/s (one 512x512 16-bit frame per request), {frames['clients']} clients",
                _number(frames.get("requests_per_second")),
            ),
            ("Frame latency median / p99", _latency(frames)),
        ]
    figures += cpu_figures(results)
    figures += memory_figures(results)
    return figures + failure_figures(result)


def cpu_figures(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Describe the CPU time server and client used per scenario, next to its duration."""
    parts = []
    for scenario, summary in results.items():
        if not isinstance(summary, dict) or "client_cpu_seconds" not in summary:
            continue
        server = summary.get("server_cpu_seconds")
        server_text = f"{server:.0f}" if server is not None else "?"
        parts.append(
            f"{scenario} {server_text} / {summary['client_cpu_seconds']:.0f} of {summary['seconds']:.0f}"
        )
    if not parts:
        return []
    return [("CPU seconds, server / client, of wall seconds", "; ".join(parts))]


def qido_figures(qido: dict[str, Any], index: str) -> list[tuple[str, str]]:
    figures = [
        (f"QIDO-RS mix median / p99 ({qido['clients']} clients, {index})", _latency(qido)),
        ("QIDO-RS mix queries/s", _number(qido.get("requests_per_second"))),
    ]
    for kind, summary in qido.get("by_kind", {}).items():
        label = QIDO_LABELS.get(kind, kind)
        results = summary.get("mean_results")
        figures.append((f"- {label}: median / p99 (mean results)", f"{_latency(summary)} ({results})"))
    return figures


def memory_figures(results: dict[str, Any]) -> list[tuple[str, str]]:
    peaks = [
        summary["server_peak_memory_mb"] for summary in results.values() if "server_peak_memory_mb" in summary
    ]
    figures = []
    if peaks:
        figures.append(("Server peak memory (VmHWM, process tree)", f"{max(peaks):.0f} MB"))
    for name, peak in results.get("services_peak_memory_mb", {}).items():
        figures.append((f"{name} peak memory (VmHWM, not part of the server)", f"{peak:.0f} MB"))
    return figures


def failure_figures(result: dict[str, Any]) -> list[tuple[str, str]]:
    count = failures(result)
    return [("Failed requests and instances not stored", str(count))] if count else []


def index_figures(result: dict[str, Any], plan: DataSetPlan) -> list[tuple[str, str]]:
    load = result["load"]["load"]
    index = f"{plan.instances:,} instances, {plan.studies:,} studies, {plan.patients:,} patients"
    figures = qido_figures(result["results"]["qido"], index)
    figures += cpu_figures(result["results"])
    figures += memory_figures(result["results"])
    figures.append(
        (
            "Index load (in-process, once)",
            f"{load['instances_loaded']:,} instances in {load['seconds']:.0f} s, "
            f"{load['checked_instances']} checked against the parser",
        )
    )
    return figures + failure_figures(result)


def baseline_figures(result: dict[str, Any]) -> list[tuple[str, str]]:
    writes = result["results"]["file_writes"]
    http = result["results"]["loopback_http"]
    size = writes["file_size_mb"]
    figures = [
        (f"fsync'd write, one {size} MB file each", f"{writes['fsync_each_mb_per_second']} MB/s"),
        (
            f"write {writes['files']} files, then fsync each",
            f"{writes['write_then_sync_mb_per_second']} MB/s",
        ),
        (
            f"Loopback HTTP download (uvicorn, 24 MiB from memory, {http['clients']} clients)",
            f"{http['mb_per_second']} MB/s",
        ),
    ]
    if "curl_one_client_mb_per_second" in http:
        figures.append(
            ("Loopback HTTP download with curl, 1 client", f"{http['curl_one_client_mb_per_second']} MB/s")
        )
    return figures


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _latency(summary: dict[str, Any]) -> str:
    return f"{summary['median_ms']:.1f} ms / {summary['p99_ms']:.1f} ms"
