// vireo-tokenizer-runs: times Tokenizer::encode on long runs of one repeated character, the
// worst case for a pre-tokenizer + BPE merge (one piece the size of the input), and prints
// the time, the token count and a hash of the ids (so two builds can be compared for
// identical output). Both wall-clock and CPU time are printed: encode is single-threaded,
// so on a shared, busy machine the CPU time is the better measure of the work done.
// A benchmark program, not a test: run it by hand or through scripts/tokenizer-bench.sh.
//
//   vireo-tokenizer-runs [--mib N] [--repeats R] model.gguf...
#include <chrono>
#include <ctime>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

int main(int argc, char** argv) {
  std::size_t mib = 16;
  int repeats = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--mib") && i + 1 < argc) mib = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = std::stoi(argv[++i]);
    else files.emplace_back(argv[i]);
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: vireo-tokenizer-runs [--mib N] [--repeats R] model.gguf...\n");
    return 2;
  }
  const std::vector<std::pair<const char*, std::string>> units = {
      {"spaces", " "}, {"'a'", "a"}, {"newlines", "\n"}, {"'1'", "1"}, {"'é'", "\xC3\xA9"},
      {"'中'", "\xE4\xB8\xAD"}, {"'!'", "!"}, {"tabs", "\t"}, {"'<'", "<"}};
  int status = 0;
  for (const auto& path : files) {
    try {
      const auto tok = vireo::Tokenizer::from_gguf(vireo::gguf::File::open(path));
      std::printf("%s (%s, pre \"%s\")\n", path.c_str(), tok.model_kind().c_str(), tok.pre_tokenizer().c_str());
      for (const auto& [name, u] : units) {
        std::string text;
        const std::size_t bytes = mib << 20;
        text.reserve(bytes + u.size());
        while (text.size() + u.size() <= bytes) text += u;
        double best = 1e30, best_cpu = 1e30;
        std::vector<vireo::Token> ids;
        for (int r = 0; r < repeats; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          const std::clock_t c0 = std::clock();
          ids = tok.encode(text, {.add_special = false, .parse_special = false});
          const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          best = std::min(best, s);
          best_cpu = std::min(best_cpu, cpu);
        }
        std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the ids
        for (vireo::Token t : ids) {
          h ^= std::uint32_t(t);
          h *= 1099511628211ull;
        }
        std::printf("  %-10s %5.1f MiB  wall %7.3f s  cpu %7.3f s  %9zu tokens  ids-hash %016llx\n", name,
                    double(text.size()) / (1 << 20), best, best_cpu, ids.size(), (unsigned long long)h);
        std::fflush(stdout);
      }
    } catch (const std::exception& e) {
      std::printf("%s: error: %s\n", path.c_str(), e.what());
      status = 1;
    }
  }
  return status;
}
