// vireo-bench entry point: dispatch to a subcommand (see vireo_bench.hpp).
#include <cstdio>
#include <cstring>

#include "vireo_bench.hpp"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "model") == 0) return vireo::bench::run_model(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) return vireo::bench::run_serve(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "spec") == 0) return vireo::bench::run_spec(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "cancel") == 0) return vireo::bench::run_cancel(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "stress") == 0) return vireo::bench::run_stress(argc - 1, argv + 1);
  std::fprintf(stderr,
               "usage: vireo-bench model [--help]   decode/prefill throughput vs the hardware floor\n"
               "       vireo-bench serve [--help]   continuous vs static batching, prefix caching on/off\n"
               "       vireo-bench spec [--help]    speculative decoding (prompt lookup) vs plain greedy\n"
               "       vireo-bench cancel [--help]  how fast a long CPU prefill stops when cancelled\n"
               "       vireo-bench stress [--help]  the scheduler at 10x overload, every request checked\n");
  return 2;
}
