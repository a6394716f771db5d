// Offload tests: preemption by swap (a sequence's K/V goes to host memory and comes back,
// possibly into other blocks after other sequences overwrote the old ones) and the
// recompute alternative (drop the sequence, re-prefill prompt + generated tokens). Each
// preempted run must give the logits of a run that was never preempted. The reference is a
// plain decode loop on a roomy cache; the models are small random ones with f32 weights, so
// the CPU arithmetic per row does not depend on the batch and swap must be bit-exact.
// The same checks run on a GPU ([cuda]) when one is present, else they skip with a warning.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

ModelConfig offload_config() { return test::model_shape(2, 32, 4, 2, 8, 64, 101, 256); }

Token argmax(std::span<const float> row) {
  return Token(std::max_element(row.begin(), row.end()) - row.begin());
}

// Greedy decode of `prompt` for n steps on a fresh roomy cache; returns the last-row logits
// of every step (the prefill step first).
std::vector<std::vector<float>> reference_steps(const Model& m, const std::vector<Token>& prompt, int n) {
  KVCache c(m, {.num_blocks = 64, .block_size = 4});
  SeqId s = c.add_sequence();
  std::vector<std::vector<float>> out;
  Batch b;
  b.add(s, prompt, Last);
  for (int i = 0; i < n; ++i) {
    Logits lg = m.forward(b, c);
    out.emplace_back(lg.row(0).begin(), lg.row(0).end());
    b.clear();
    b.add(s, {argmax(lg.row(0))}, Last);
  }
  return out;
}

std::vector<Token> prompt_of(int n, int salt, int vocab) {
  std::vector<Token> p(std::size_t(n), 0);
  for (int i = 0; i < n; ++i) p[std::size_t(i)] = Token((i * 31 + salt * 17 + 5) % vocab);
  return p;
}

using test::max_abs_diff;

enum class Preempt { Swap, Recompute };

// Decode `prompt` for n steps on a tight cache while a second sequence competes for blocks:
// at step `at` the first sequence is preempted, the competitor fills the pool (overwriting
// the freed blocks), then is removed and the first one resumes. Checks every step's logits
// against the never-preempted reference with tolerance `tol` (0: bit-exact).
void preempt_and_compare(const Model& m, Preempt how, double tol) {
  const auto& cfg = m.config();
  const std::vector<Token> prompt = prompt_of(13, 1, cfg.vocab_size);
  const int n = 12, at = 5;
  const auto ref = reference_steps(m, prompt, n);

  KVCache c(m, {.num_blocks = 8, .block_size = 4});  // 32 slots: 13 + 12 fits, not with a rival
  SeqId s = c.add_sequence();
  std::vector<Token> history = prompt;
  Batch b;
  b.add(s, prompt, Last);
  for (int i = 0; i < n; ++i) {
    if (i == at) {
      const auto before = std::vector<Token>(c.tokens(s).begin(), c.tokens(s).end());
      if (how == Preempt::Swap) {
        c.swap_out(s);
        CHECK(c.is_swapped(s));
        CHECK(c.available_blocks() == c.num_blocks());
      } else {
        c.remove(s);
      }
      // A rival takes every block and writes its own K/V into them.
      SeqId rival = c.add_sequence();
      Batch rb;
      rb.add(rival, prompt_of(int(c.capacity_tokens()), 7, cfg.vocab_size), Last);
      m.forward(rb, c);
      CHECK(c.available_blocks() == 0);
      if (how == Preempt::Swap) CHECK_THROWS_AS(c.swap_in(s), Error);  // no room: stays swapped
      c.remove(rival);
      if (how == Preempt::Swap) {
        c.swap_in(s);
        CHECK(!c.is_swapped(s));
        CHECK(std::vector<Token>(c.tokens(s).begin(), c.tokens(s).end()) == before);
      } else {
        // Recompute: a new sequence re-prefills everything but the pending token.
        s = c.add_sequence();
        std::vector<Token> all(history.begin(), history.end() - 1);
        Batch pb;
        pb.add(s, all, Want::None);
        m.forward(pb, c);
        b.clear();
        b.add(s, {history.back()}, Last);
      }
    }
    Logits lg = m.forward(b, c);
    INFO("step " << i << (how == Preempt::Swap ? " (swap)" : " (recompute)"));
    const double err = max_abs_diff(lg.row(0), ref[std::size_t(i)]);
    if (tol == 0) CHECK(err == 0);
    else CHECK(err <= tol);
    const Token t = argmax(lg.row(0));
    history.push_back(t);
    b.clear();
    b.add(s, {t}, Last);
  }
  CHECK(c.length(s) == std::int64_t(prompt.size()) + n - 1);
}

}  // namespace

TEST_CASE("swap out and back in: logits identical to a run never preempted", "[cpu][offload]") {
  Model m = Model::random(offload_config(), 11, {.n_threads = 2}, gguf::TensorType::F32);
  preempt_and_compare(m, Preempt::Swap, 0.0);
}

TEST_CASE("recompute preemption: re-prefill gives the logits of a run never preempted", "[cpu][offload]") {
  Model m = Model::random(offload_config(), 12, {.n_threads = 2}, gguf::TensorType::F32);
  // Prefill and decode sum the same products for a row; allow only rounding-level drift.
  preempt_and_compare(m, Preempt::Recompute, 1e-5);
}

TEST_CASE("swap round trip of several sequences keeps each one's state", "[cpu][offload]") {
  Model m = Model::random(offload_config(), 13, {.n_threads = 2}, gguf::TensorType::F32);
  const auto& cfg = m.config();
  KVCache c(m, {.num_blocks = 16, .block_size = 4, .prefix_caching = true});
  // Two sequences sharing a forked prefix: swapping one out must not disturb the other,
  // and the swapped one comes back with its own copy of what it shared.
  SeqId a = c.add_sequence();
  Batch b;
  b.add(a, prompt_of(10, 2, cfg.vocab_size), Last);
  m.forward(b, c);
  SeqId f = c.fork(a);
  c.swap_out(f);
  Batch step;
  step.add(a, {3}, Last);
  Logits la = m.forward(step, c);
  c.swap_in(f);
  Batch fs;
  fs.add(f, {3}, Last);
  Logits lf = m.forward(fs, c);
  CHECK(max_abs_diff(la.row(0), lf.row(0)) == 0);  // same history, same next token
  CHECK(c.stats().swapped_sequences == 0);
  // Removing a swapped sequence frees its host copy and leaves the others intact.
  c.swap_out(a);
  c.remove(a);
  CHECK(!c.contains(a));
  CHECK(c.length(f) == 11);
}

TEST_CASE("swap and recompute on a GPU match a run never preempted", "[cuda][offload]") {
  VIREO_REQUIRE_GPU();
  ModelOptions o;
  o.device = Device::cuda(0);
  o.dtype = DType::F32;
  // The CUDA attention kernels take head_dim 64 or 128: the same tiny model with 64-wide heads.
  Model m = Model::random(test::model_shape(2, 128, 2, 1, 64, 128, 101, 256), 21, o, gguf::TensorType::F32);
  // GPU kernels may pick different reductions for a prefill and a decode row.
  preempt_and_compare(m, Preempt::Swap, 0.0);
  preempt_and_compare(m, Preempt::Recompute, 1e-4);
}
