// KVCache::save / restore: a restored sequence continues exactly as the saved one would have
// (bit-exact logits on the CPU: the same K/V bytes feed the same arithmetic), and every bad
// file (another model, precision or block size; damaged, truncated, foreign) is refused by
// name with the cache unchanged.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

ModelConfig small() { return test::model_shape(2, 32, 4, 2, 8, 64, 101, 256); }

std::filesystem::path tmp(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("vireo-kvfile-" + name);
}

std::vector<Token> prompt_of(int n, int vocab) {
  std::vector<Token> p;
  for (int i = 0; i < n; ++i) p.push_back(Token((i * 37 + 11) % vocab));
  return p;
}

// Logits of `next` appended to `seq`.
std::vector<float> step(const Model& m, KVCache& c, SeqId seq, Token next) {
  Batch b;
  b.add(seq, {next}, Last);
  const Logits lg = m.forward(b, c);
  return {lg.row(0).begin(), lg.row(0).end()};
}

SeqId prefill(const Model& m, KVCache& c, const std::vector<Token>& prompt) {
  const SeqId s = c.add_sequence();
  Batch b;
  b.add(s, prompt, Last);
  m.forward(b, c);
  return s;
}

std::vector<char> read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_all(const std::filesystem::path& p, const std::vector<char>& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// The cache's observable state, to check that a refused call changed nothing.
struct Snapshot {
  std::vector<SeqId> seqs;
  std::int64_t used = 0, free = 0;
  bool operator==(const Snapshot&) const = default;
};
Snapshot snap(const KVCache& c) {
  const KVCacheStats st = c.stats();
  return {c.sequences(), st.blocks_used, st.blocks_free};
}

}  // namespace

TEST_CASE("a restored sequence continues exactly as the saved one", "[cpu][kv]") {
  const Model m = Model::random(small(), 7);
  const auto prompt = prompt_of(21, small().vocab_size);  // 5 full blocks of 4 and one token
  for (KVPrecision prec : {KVPrecision::Model, KVPrecision::Int8}) {
    INFO("int8 " << (prec == KVPrecision::Int8));
    const KVCacheOptions opts{.num_blocks = 32, .block_size = 4, .precision = prec};
    KVCache a(m, opts);
    const SeqId sa = prefill(m, a, prompt);
    const auto path = tmp("roundtrip.kv");
    a.save(sa, path);
    const std::vector<float> want = step(m, a, sa, 42);

    // Into another cache whose blocks were used by someone else first.
    KVCache b(m, opts);
    const SeqId other = prefill(m, b, prompt_of(30, 97));
    b.remove(other);
    const SeqId sb = b.restore(path);
    CHECK(b.length(sb) == std::int64_t(prompt.size()));
    CHECK(std::vector<Token>(b.tokens(sb).begin(), b.tokens(sb).end()) == prompt);
    CHECK(step(m, b, sb, 42) == want);

    // A swapped sequence saves the same bytes.
    KVCache c(m, opts);
    const SeqId sc = prefill(m, c, prompt);
    c.swap_out(sc);
    const auto path2 = tmp("swapped.kv");
    c.save(sc, path2);
    CHECK(read_all(path2) == read_all(path));
    std::filesystem::remove(path);
    std::filesystem::remove(path2);
  }
}

TEST_CASE("the SmolLM2 KV file restores a conversation's state", "[cpu][kv][golden]") {
  const Model m = Model::load(test::require_model(), {.n_threads = 2});
  const auto prompt = m.tokenizer().encode("The capital of France is Paris. The capital of Italy is");
  KVCache a(m, {.num_blocks = 64});
  const SeqId sa = prefill(m, a, prompt);
  const auto path = tmp("smollm2.kv");
  a.save(sa, path);
  const std::vector<float> want = step(m, a, sa, m.tokenizer().encode(" Rome")[0]);
  KVCache b(m, {.num_blocks = 64});
  const SeqId sb = b.restore(path);
  CHECK(step(m, b, sb, m.tokenizer().encode(" Rome")[0]) == want);
  std::filesystem::remove(path);
}

TEST_CASE("bad KV files are refused by name and change nothing", "[cpu][kv]") {
  const Model m = Model::random(small(), 7);
  const auto prompt = prompt_of(10, small().vocab_size);
  KVCache a(m, {.num_blocks = 16, .block_size = 4});
  const SeqId sa = prefill(m, a, prompt);
  const auto path = tmp("good.kv");
  a.save(sa, path);
  const std::vector<char> good = read_all(path);

  KVCache target(m, {.num_blocks = 16, .block_size = 4});
  const SeqId keep = prefill(m, target, prompt_of(6, 50));
  const Snapshot before = snap(target);
  auto refused = [&](const std::filesystem::path& p, ErrorCode code, const std::string& words) {
    INFO("expecting: " << words);
    try {
      target.restore(p);
      FAIL("restore accepted a bad file");
    } catch (const Error& e) {
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(words));
    }
    CHECK(snap(target) == before);
    CHECK(target.length(keep) == 6);
  };
  const auto bad = tmp("bad.kv");
  auto with = [&](auto&& edit) {
    std::vector<char> b = good;
    edit(b);
    write_all(bad, b);
    return bad;
  };

  refused(with([](auto& b) { b[0] = 'X'; }), ErrorCode::InvalidArgument, "bad magic");
  refused(with([](auto& b) { b[8] = 2; }), ErrorCode::InvalidArgument, "format version 2");
  refused(with([](auto& b) { b[b.size() / 2] ^= 1; }), ErrorCode::InvalidArgument, "checksum mismatch");
  refused(with([](auto& b) { b.resize(b.size() - 9); }), ErrorCode::InvalidArgument, "does not hold");
  refused(with([](auto& b) { b.resize(20); }), ErrorCode::InvalidArgument, "too short");
  refused(tmp("does-not-exist.kv"), ErrorCode::Io, "cannot open");

  // Another model of the same shape (other weights), another precision, another block size.
  const Model m2 = Model::random(small(), 8);
  KVCache other_model(m2, {.num_blocks = 16, .block_size = 4});
  other_model.save(prefill(m2, other_model, prompt), bad);
  refused(bad, ErrorCode::InvalidArgument, "another model");
  KVCache int8(m, {.num_blocks = 16, .block_size = 4, .precision = KVPrecision::Int8});
  int8.save(prefill(m, int8, prompt), bad);
  refused(bad, ErrorCode::InvalidArgument, "int8");
  KVCache blocks8(m, {.num_blocks = 16, .block_size = 8});
  blocks8.save(prefill(m, blocks8, prompt), bad);
  refused(bad, ErrorCode::InvalidArgument, "block size 8");

  // No room: CacheFull, nothing changed.
  KVCache tiny(m, {.num_blocks = 2, .block_size = 4});
  CHECK_THROWS_AS(tiny.restore(path), Error);
  CHECK(tiny.sequences().empty());
  CHECK(tiny.stats().blocks_free == 2);

  // A failed save leaves an existing file whole.
  CHECK_THROWS_AS(a.save(SeqId(999), path), Error);
  CHECK(read_all(path) == good);
  std::filesystem::remove(path);
  std::filesystem::remove(bad);
}
