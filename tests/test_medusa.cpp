// Medusa heads: the sidecar loader refuses files made for another base (d_model, vocabulary
// size or hash) and malformed ones by name, and speculative decoding with a Medusa tree
// (static and dynamic) returns exactly the target's greedy tokens — with heads that guess
// badly (random) and with heads that guess the target's own next token (zero blocks).
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "golden_cases.hpp"
#include "test_util.hpp"
#include "vireo/medusa.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

struct SidecarSpec {
  int heads = 3, layers = 1, d = 64, vocab = 101, version = 1;
  std::string hash = "0000000000000000";
  float scale = 0.1f;  // weights uniform in [-scale, scale]; 0: zero blocks (x stays h)
  std::string skip;    // a tensor to leave out
  int bad_rows = 0;    // write this many rows instead of d for block weights
};

std::filesystem::path write_sidecar(const SidecarSpec& s, const std::string& name) {
  gguf::Writer w;
  using gguf::Value;
  using gguf::ValueType;
  w.set("general.architecture", Value::make_string("medusa"));
  w.set("medusa.format_version", Value::make_uint(ValueType::UInt32, std::uint64_t(s.version)));
  w.set("medusa.head_count", Value::make_uint(ValueType::UInt32, std::uint64_t(s.heads)));
  w.set("medusa.layer_count", Value::make_uint(ValueType::UInt32, std::uint64_t(s.layers)));
  w.set("medusa.embedding_length", Value::make_uint(ValueType::UInt32, std::uint64_t(s.d)));
  w.set("medusa.vocab_size", Value::make_uint(ValueType::UInt32, std::uint64_t(s.vocab)));
  w.set("medusa.vocab_hash", Value::make_string(s.hash));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-s.scale, s.scale);
  for (int k = 0; k < s.heads; ++k)
    for (int r = 0; r < s.layers; ++r) {
      const std::string wn = "medusa." + std::to_string(k) + "." + std::to_string(r) + ".weight";
      const std::string bn = "medusa." + std::to_string(k) + "." + std::to_string(r) + ".bias";
      const int rows = s.bad_rows ? s.bad_rows : s.d;
      std::vector<float> wv(std::size_t(rows) * std::size_t(s.d)), bv(std::size_t(s.d));
      for (auto& x : wv) x = s.scale > 0 ? u(rng) : 0.0f;
      for (auto& x : bv) x = s.scale > 0 ? u(rng) : 0.0f;
      if (wn != s.skip)
        w.add_tensor(wn, gguf::TensorType::F32, {std::uint64_t(s.d), std::uint64_t(rows)},
                     std::as_bytes(std::span<const float>(wv)));
      if (bn != s.skip)
        w.add_tensor(bn, gguf::TensorType::F32, {std::uint64_t(s.d)}, std::as_bytes(std::span<const float>(bv)));
    }
  const auto p = std::filesystem::temp_directory_path() / ("vireo-medusa-" + name + ".gguf");
  w.write(p);
  return p;
}

std::vector<Token> plain_greedy(const Model& m, const std::vector<Token>& toks, int n) {
  return test::greedy_tokens(m, toks, n);
}

std::vector<Token> medusa_greedy(const MedusaHeads& h, const TreeParams& tp, std::vector<Token> toks, int n,
                                 SpeculativeStats* st = nullptr) {
  const Model& m = h.base();
  KVCache c(m, {.num_blocks = 64, .block_size = 8});
  const SeqId s = c.add_sequence();
  SpeculativeDecoder dec(h, tp);
  Sampler greedy({.temperature = 0.0f});
  std::vector<Token> out;
  while (int(out.size()) < n) {
    const auto got = dec.step(toks, c, s, greedy);
    REQUIRE(!got.empty());
    toks.insert(toks.end(), got.begin(), got.end());
    out.insert(out.end(), got.begin(), got.end());
  }
  out.resize(std::size_t(n));
  if (st) *st = dec.stats();
  return out;
}

}  // namespace

TEST_CASE("Medusa drafting returns exactly the target's greedy tokens", "[cpu][medusa]") {
  const Model m = Model::random(test::model_shape(2, 64, 4, 2, 16, 96, 101, 512), 21, {.n_threads = 2});
  const std::vector<Token> prompt = {5, 17, 5, 17, 5, 17, 42};
  const auto ref = plain_greedy(m, prompt, 40);
  for (float scale : {0.2f, 0.0f}) {
    SidecarSpec s;
    s.scale = scale;
    const MedusaHeads h = MedusaHeads::load(write_sidecar(s, "exact"), m);
    CHECK(h.head_count() == 3);
    for (bool dynamic : {false, true}) {
      INFO("head weights scale " << scale << ", dynamic tree " << dynamic);
      SpeculativeStats st;
      CHECK(medusa_greedy(h, {.top_k = {4, 3, 2}, .dynamic = dynamic, .max_tree_tokens = 24}, prompt, 40, &st) == ref);
      CHECK(st.rounds > 0);
      CHECK(st.emitted >= st.rounds);
    }
  }
}

TEST_CASE("Medusa sidecars made for another base or malformed are refused by name", "[cpu][medusa]") {
  const Model m = Model::random(test::model_shape(2, 64, 4, 2, 16, 96, 101, 512), 22, {.n_threads = 1});
  auto refusal = [&](const SidecarSpec& s) -> std::string {
    try {
      (void)MedusaHeads::load(write_sidecar(s, "bad"), m);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  SidecarSpec d;
  d.d = 32;
  CHECK_THAT(refusal(d), Catch::Contains("d_model 32") && Catch::Contains("has 64"));
  SidecarSpec v;
  v.vocab = 100;
  CHECK_THAT(refusal(v), Catch::Contains("vocabulary of 100 tokens"));
  SidecarSpec ver;
  ver.version = 2;
  CHECK_THAT(refusal(ver), Catch::Contains("format version 2"));
  SidecarSpec miss;
  miss.skip = "medusa.1.0.bias";
  CHECK_THAT(refusal(miss), Catch::Contains("medusa.1.0.bias"));
  SidecarSpec shape;
  shape.bad_rows = 63;
  CHECK_THAT(refusal(shape), Catch::Contains("medusa.0.0.weight"));
  SidecarSpec heads;
  heads.heads = 0;
  CHECK_THAT(refusal(heads), Catch::Contains("medusa.head_count"));
  CHECK_THROWS_WITH(MedusaHeads::load(test::fixture("family/llama.gguf"), m), Catch::Contains("not a Medusa sidecar"));
  // Truncated: the first half of a good file.
  const auto good = write_sidecar(SidecarSpec{}, "trunc");
  std::filesystem::resize_file(good, std::filesystem::file_size(good) / 2);
  CHECK_THROWS_AS(MedusaHeads::load(good, m), Error);

  // Sampling is not implemented for trees; bad tree shapes are refused.
  const MedusaHeads h = MedusaHeads::load(write_sidecar(SidecarSpec{}, "ok"), m);
  KVCache c(m, {.num_blocks = 16});
  const SeqId s = c.add_sequence();
  SpeculativeDecoder dec(h, TreeParams{});
  Sampler warm({.temperature = 0.8f, .seed = 1});
  const std::vector<Token> toks = {1, 2, 3};
  CHECK_THROWS_WITH(dec.step(toks, c, s, warm), Catch::Contains("temperature > 0"));
  CHECK(c.length(s) <= 2);
  CHECK_THROWS_WITH(SpeculativeDecoder(h, TreeParams{.max_tree_tokens = 65}), Catch::Contains("max_tree_tokens"));
  CHECK_THROWS_WITH(SpeculativeDecoder(h, TreeParams{.top_k = {2, 2, 2, 2}}), Catch::Contains("top_k has 4 depths"));
}

TEST_CASE("SmolLM2 with Medusa heads: identical greedy output; the vocabulary hash is checked", "[golden][medusa]") {
  const Model m = Model::load(test::require_model(), {.n_threads = 2});
  SidecarSpec s;
  s.d = 576;
  s.vocab = 49152;
  s.scale = 0.0f;
  s.hash = MedusaHeads::vocab_hash(m);
  const MedusaHeads h = MedusaHeads::load(write_sidecar(s, "smollm2"), m);
  const auto prompt = m.tokenizer().encode("The capital of France is Paris. The capital of France is");
  SpeculativeStats st;
  CHECK(medusa_greedy(h, {}, prompt, 32, &st) == plain_greedy(m, prompt, 32));
  SidecarSpec other = s;
  other.hash = "0123456789abcdef";
  CHECK_THROWS_WITH(MedusaHeads::load(write_sidecar(other, "smollm2-other"), m), Catch::Contains("another vocabulary"));
}

TEST_CASE("SmolLM2 with the trained Medusa sidecar: identical greedy output, drafts accepted", "[golden][medusa]") {
  // tests/fixtures/medusa/smollm2-medusa.gguf: soft-label heads written by
  // scripts/train_drafter.py with gguf-py (an independent writer of the sidecar format and
  // of the vocabulary hash).
  const Model m = Model::load(test::require_model(), {.n_threads = 2});
  const MedusaHeads h = MedusaHeads::load(test::fixture("medusa/smollm2-medusa.gguf"), m);
  CHECK(h.head_count() == 3);
  const auto prompt = m.tokenizer().encode_chat(
      std::vector<ChatMessage>{{"user", "Explain what a compiler does, in a few sentences."}});
  for (bool dynamic : {false, true}) {
    INFO("dynamic " << dynamic);
    SpeculativeStats st;
    CHECK(medusa_greedy(h, {.top_k = {2, 2, 1}, .dynamic = dynamic, .max_tree_tokens = 8}, prompt, 32, &st) ==
          plain_greedy(m, prompt, 32));
    CHECK(st.accepted > 0);
  }
}
