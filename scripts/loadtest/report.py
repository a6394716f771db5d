#!/usr/bin/env python3
"""Combine the phases of scripts/load-test.sh into one report: for each phase, aiperf's own
summary (profile_export_aiperf.json: throughput, TTFT, inter-token latency, request latency,
goodput, errors) and the change in vireo-server's /metrics counters over the phase
(accepted, refused with 429, cancelled, preempted). Writes JSON and a Markdown table.

usage: report.py OUT_DIR JSON_OUT MD_OUT   (OUT_DIR holds <phase>/ from aiperf, <phase>.before.prom,
       <phase>.after.prom and meta.json written by load-test.sh)
"""
import json
import os
import sys

COUNTERS = ["vireo_requests_accepted_total", "vireo_requests_rejected_overloaded_total",
            "vireo_requests_finished_length_total", "vireo_requests_finished_stop_total",
            "vireo_requests_cancelled_total", "vireo_client_disconnects_total",
            "vireo_scheduler_preemptions_total", "vireo_scheduler_steps_total"]


def prom(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
    return out


def errors_by_status(summary):
    out = {}
    for e in summary:
        d = e.get("error_details", {})
        key = f"{d.get('code')} {d.get('type')}"
        out[key] = out.get(key, 0) + int(e.get("count", 1))
    return out


def stat(d, key, fields=("avg", "p50", "p90", "p99")):
    m = d.get(key)
    if not isinstance(m, dict):
        return None
    return {"unit": m.get("unit"), **{f: round(m[f], 3) for f in fields if f in m}}


def main(out_dir, json_out, md_out):
    meta = json.load(open(os.path.join(out_dir, "meta.json")))
    phases = []
    for p in meta["phases"]:
        name = p["name"]
        agg = json.load(open(os.path.join(out_dir, name, "profile_export_aiperf.json")))
        before, after = prom(os.path.join(out_dir, f"{name}.before.prom")), prom(os.path.join(out_dir, f"{name}.after.prom"))
        server = {c.replace("vireo_", "").replace("_total", ""): int(after.get(c, 0) - before.get(c, 0)) for c in COUNTERS}
        phases.append({
            "phase": name,
            "load": p["load"],
            "aiperf_command": agg.get("run_info", {}).get("cli_command"),
            "completed_requests": stat(agg, "completed_request_count", ("avg",)),
            "request_error_rate": stat(agg, "request_error_rate", ("avg",)),
            "errors_by_status": errors_by_status(agg.get("error_summary") or []),
            "request_throughput": stat(agg, "request_throughput", ("avg",)),
            "output_token_throughput": stat(agg, "output_token_throughput", ("avg",)),
            "goodput": stat(agg, "goodput", ("avg",)),
            "good_request_count": stat(agg, "good_request_count", ("avg",)),
            "time_to_first_token": stat(agg, "time_to_first_token"),
            "inter_token_latency": stat(agg, "inter_token_latency"),
            "request_latency": stat(agg, "request_latency"),
            "input_sequence_length": stat(agg, "input_sequence_length", ("avg",)),
            "output_sequence_length": stat(agg, "output_sequence_length", ("avg",)),
            "benchmark_duration": stat(agg, "benchmark_duration", ("avg",)),
            "server_counters_delta": server,
        })
    report = {**{k: v for k, v in meta.items() if k != "phases"}, "phases": phases}
    with open(json_out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    def v(s, f="avg"):
        if not s or f not in s:
            return "n/a"
        x = s[f]
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"

    def ok(p):
        done, err = p["completed_requests"], p["request_error_rate"]
        return "n/a" if not done or not err else f"{done['avg'] * (1 - err['avg'] / 100):.0f}"

    lines = [f"# vireo-server under aiperf {meta['aiperf_version']} ({meta['date']}, commit {meta['commit'][:12]})", "",
             meta["note"], "", f"Server: `{meta['server_command']}`.", "",
             f"Goodput SLOs: {meta['goodput_slo']}. Latencies in ms; throughput per second.", "",
             "| phase | load | sent | ok | errors | req/s | out tok/s | goodput (req/s) | TTFT p50 / p99 | "
             "ITL p50 / p99 | 429 | cancelled | preempted |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in phases:
        s = p["server_counters_delta"]
        lines.append(
            f"| {p['phase']} | {p['load']} | {v(p['completed_requests'])} | {ok(p)} | {v(p['request_error_rate'])}% | "
            f"{v(p['request_throughput'])} | {v(p['output_token_throughput'])} | {v(p['goodput'])} | "
            f"{v(p['time_to_first_token'], 'p50')} / {v(p['time_to_first_token'], 'p99')} | "
            f"{v(p['inter_token_latency'], 'p50')} / {v(p['inter_token_latency'], 'p99')} | "
            f"{s['requests_rejected_overloaded']} | {s['requests_cancelled']} | {s['scheduler_preemptions']} |")
    lines += ["", "The aiperf JSON of every phase is summarised in the JSON beside this file "
              "(`server_counters_delta` is the change in vireo-server's /metrics over the phase).", ""]
    with open(md_out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
