// vireo-bench: the end-to-end benchmark. One binary, subcommands in separate files:
//   vireo-bench model ...   decode tok/s at several batch sizes, prefill tok/s, TTFT, with
//                           the fraction of the hardware floor (vireo_bench_model.cpp)
//   vireo-bench serve ...   workload replay: continuous vs static batching, prefix caching
//                           on vs off, on one Poisson trace (vireo_bench_serve.cpp)
// vireo_bench_main.cpp dispatches. Each subcommand prints a human summary to stderr and
// JSON to stdout (or --json FILE); results are committed under bench/results/.
#pragma once

namespace vireo::bench {
int run_model(int argc, char** argv);
int run_serve(int argc, char** argv);
}  // namespace vireo::bench
