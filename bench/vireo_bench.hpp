// vireo-bench: the end-to-end benchmark. One binary, subcommands in separate files:
//   vireo-bench model ...   decode tok/s at several batch sizes, prefill tok/s, TTFT, with
//                           the fraction of the hardware floor (vireo_bench_model.cpp)
//   vireo-bench serve ...   workload replay: continuous vs static batching, prefix caching
//                           on vs off, on one Poisson trace (vireo_bench_serve.cpp)
//   vireo-bench spec ...    speculative decoding (prompt lookup) against plain greedy decoding
//                           on tasks that quote their input and on one that does not
//                           (vireo_bench_spec.cpp)
//   vireo-bench cancel ...  how fast a long CPU prefill stops when its cancel flag is raised
//                           (vireo_bench_cancel.cpp)
//   vireo-bench stress ...  the Scheduler at 10x overload with cancellations, deadlines,
//                           rejections and preemptions; every request accounted for and
//                           checked against its run alone (vireo_bench_stress.cpp)
// vireo_bench_main.cpp dispatches. Each subcommand prints a human summary to stderr and
// JSON to stdout (or --json FILE); results are committed under bench/results/.
#pragma once
#include <string>

namespace vireo::bench {
int run_model(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_spec(int argc, char** argv);
int run_cancel(int argc, char** argv);
int run_stress(int argc, char** argv);
/// s as a JSON string literal (quotes, backslashes and control characters escaped).
std::string jstr(const std::string& s);
/// The first line a shell command prints, without its line end ("" when it fails).
std::string first_line(const char* cmd);
/// /proc/cpuinfo's first "model name" ("unknown" elsewhere).
std::string cpu_name();
/// The CPU's read bandwidth in GB/s on `threads` threads (vireo-bench model's measurement,
/// with its matmul rates: a few seconds).
double measure_cpu_read_gbs(int threads);
}  // namespace vireo::bench
