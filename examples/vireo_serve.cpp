// vireo-serve: a short example of the caller-owned batching loop with vireo::Scheduler.
// Several chat prompts share one system message (so prefix caching has something to reuse);
// half are submitted at once, the rest join between steps while the first ones decode
// (continuous batching). Each step is one forward; tokens stream out as events and each
// completion is printed when it finishes, then the Metrics summary (TTFT / ITL / E2E
// percentiles, throughput, cache hit rate) as JSON.
//
// usage: vireo-serve [MODEL.gguf] [--max-new N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "vireo/vireo.hpp"

int main(int argc, char** argv) {
  std::string path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int max_new = 48;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--max-new") == 0 && i + 1 < argc) max_new = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--help") == 0) {
      std::printf("usage: vireo-serve [MODEL.gguf] [--max-new N]\n");
      return 0;
    } else path = argv[i];
  }
  try {
    const vireo::Model model = vireo::Model::load(path);
    const vireo::Tokenizer& tok = model.tokenizer();
    // Small blocks keep the allocated-but-empty tail of each sequence short.
    vireo::KVCache cache(model, {.num_blocks = 256, .block_size = 8, .prefix_caching = true});
    vireo::Metrics metrics;
    vireo::Scheduler sched(model, cache,
                           {.mode = vireo::BatchingMode::Continuous,
                            .preemption = vireo::PreemptionMode::Swap,
                            .max_batch_tokens = 128,
                            .max_running = 8,
                            .metrics = &metrics});

    const std::string system = "You are a concise assistant. Answer in one or two sentences.";
    const std::vector<std::string> questions = {
        "What is the capital of France?", "Why is the sky blue?",       "Name three prime numbers.",
        "What does a compiler do?",       "How many legs does a spider have?", "What is photosynthesis?"};
    std::vector<vireo::Request> reqs;
    for (std::size_t i = 0; i < questions.size(); ++i) {
      const std::vector<vireo::ChatMessage> chat = {{"system", system}, {"user", questions[i]}};
      vireo::Request r;
      r.id = i;
      r.prompt = tok.encode_chat(chat);
      r.max_new_tokens = max_new;
      r.sampling.temperature = 0.0f;  // greedy; set temperature / top_p / seed per request to sample
      reqs.push_back(std::move(r));
    }

    const std::size_t first_wave = reqs.size() / 2;
    for (std::size_t i = 0; i < first_wave; ++i) sched.submit(reqs[i]);
    std::size_t next = first_wave;
    int steps = 0;
    while (!sched.idle() || next < reqs.size()) {
      // New requests join between steps (here: one every other step).
      if (next < reqs.size() && steps % 2 == 1) sched.submit(reqs[next++]);
      const vireo::StepResult r = sched.step();
      ++steps;
      for (const auto& f : r.finished) {
        std::printf("[%llu] %s\n  -> %s%s\n  (%zu prompt tokens, %lld from the prefix cache, %zu generated)\n\n",
                    static_cast<unsigned long long>(f.id), questions[f.id].c_str(), tok.decode(f.output, true).c_str(),
                    f.reason == vireo::FinishReason::Stop ? "" : " [length]", f.prompt.size(),
                    static_cast<long long>(f.cached_prompt_tokens), f.output.size());
      }
    }
    const vireo::SchedulerStats& st = sched.stats();
    std::printf("%lld steps, %lld prefill + %lld decode tokens, %lld preemptions\n", static_cast<long long>(st.steps),
                static_cast<long long>(st.prefill_tokens), static_cast<long long>(st.decode_tokens),
                static_cast<long long>(st.preemptions_swap + st.preemptions_recompute));
    std::printf("%s\n", metrics.to_json().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-serve: %s\n", e.what());
    return 1;
  }
}
