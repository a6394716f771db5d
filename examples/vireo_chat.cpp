// vireo-chat: a multi-turn chat on the command line with the C++ API. Each line read from
// stdin is a user turn; the reply streams to stdout. The conversation is rendered with the
// model's chat template every turn, and only the tokens the KV cache does not hold yet are
// fed (the cache keeps the common prefix: earlier turns are never recomputed).
//
//   vireo-chat [-m model.gguf] [--temp 0.7] [--max-tokens 256] [--system "..."]
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "vireo/vireo.hpp"

int main(int argc, char** argv) {
  std::string path = "models/SmolLM2-135M-Instruct.Q4_1.gguf", system = "You are a helpful assistant.";
  float temp = 0.7f;
  int max_tokens = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "-m") path = argv[i + 1];
    else if (a == "--temp") temp = std::strtof(argv[i + 1], nullptr);
    else if (a == "--max-tokens") max_tokens = std::atoi(argv[i + 1]);
    else if (a == "--system") system = argv[i + 1];
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  try {
    vireo::set_log_level(vireo::LogLevel::Warn);
    const auto model = vireo::Model::load(path);
    const vireo::Tokenizer& tok = model.tokenizer();
    vireo::KVCache cache(model, {.memory_budget_bytes = 256ull << 20});
    vireo::Sampler sampler({.temperature = temp, .top_p = 0.9f, .seed = 42});
    const vireo::SeqId seq = cache.add_sequence();
    std::vector<vireo::ChatMessage> chat = {{"system", system}};
    std::vector<vireo::Token> held;  // what the cache holds for `seq`
    std::string line;
    while (std::printf("> "), std::fflush(stdout), std::getline(std::cin, line)) {
      chat.push_back({"user", line});
      // The template's own markers are special tokens, so the rendering is parsed for them.
      const auto prompt = tok.encode_chat(chat);
      std::size_t same = 0;  // keep the longest common prefix (at least one token to feed)
      while (same < held.size() && same + 1 < prompt.size() && held[same] == prompt[same]) ++same;
      cache.truncate(seq, std::int64_t(same));
      held.assign(prompt.begin(), prompt.end());

      vireo::Batch batch;
      batch.add(seq, std::span(prompt).subspan(same), vireo::Last);
      vireo::StreamDecoder stream(tok);
      std::string reply;
      for (int n = 0; n < max_tokens; ++n) {
        const auto logits = model.forward(batch, cache);
        const vireo::Token t = sampler.sample(logits.row(0), held).token;
        held.push_back(t);
        batch.clear();
        batch.add(seq, t, true);
        if (tok.is_eog(t)) break;
        const std::string piece = stream.push(t);
        reply += piece;
        std::fputs(piece.c_str(), stdout);
        std::fflush(stdout);
      }
      reply += stream.flush();
      held.pop_back();  // the last sampled token was never fed: the cache does not hold it
      std::printf("\n");
      chat.push_back({"assistant", reply});
    }
    return 0;
  } catch (const vireo::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
