// Consumer smoke test: load the model given on the command line, greedy-generate a few
// tokens through the public API only, and print them.
#include <vireo/vireo.hpp>

#include <algorithm>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: consumer model.gguf\n");
    return 2;
  }
  try {
    auto model = vireo::Model::load(argv[1]);
    vireo::KVCache cache(model, {.memory_budget_bytes = 64ull << 20});
    vireo::Sampler sampler({.temperature = 0.0f});
    auto seq = cache.add_sequence();
    vireo::Batch batch;
    batch.add(seq, model.tokenizer().encode("The capital of France is"), vireo::Last);
    std::vector<vireo::Token> out;
    for (int i = 0; i < 8; ++i) {
      auto logits = model.forward(batch, cache);
      auto tok = sampler.sample(logits.row(0)).token;
      out.push_back(tok);
      batch.clear();
      batch.add(seq, tok, true);
    }
    std::printf("%s\n", model.tokenizer().decode(out).c_str());
    return 0;
  } catch (const vireo::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
