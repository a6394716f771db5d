// Fuzz target: random sequences of KVCache and Batch operations on a tiny random model,
// checked against a shadow model of what the cache must hold. Each input byte picks an
// operation (add, add with a cached prefix, fork, truncate, remove, swap out, swap in, a
// forward step over several sequences, an operation on an unknown id); the next bytes are
// its arguments. The cache is small (8 blocks of 4 tokens), so CacheFull, eviction, copy on
// write and prefix reuse all happen. After every operation:
//   - the cache's sequences, lengths and tokens equal the shadow's, whether the operation
//     succeeded or threw vireo::Error (a failed call leaves the cache as it was);
//   - the block counts add up (used + cached + free = total, available = free + cached,
//     used is at least the largest sequence's blocks and at most the sum of all of them);
//   - every logits row a forward returns equals the logits of the same tokens computed
//     from scratch in a fresh cache (so a wrong block table, a bad copy on write or a
//     reused prefix with different tokens shows up as wrong numbers).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"

using namespace vireo;

namespace {

constexpr int VOCAB = 48, BLOCK = 4, BLOCKS = 8;

const Model& model() {
  static const Model* m = [] {
    ModelConfig c;
    c.n_layers = 2;
    c.d_model = 16;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 8;
    c.d_ff = 24;
    c.vocab_size = VOCAB;
    c.context_length = 256;
    return new Model(Model::random(c, 7, {.n_threads = 1}));
  }();
  return *m;
}

struct Shadow {
  std::map<SeqId, std::vector<Token>> seqs;
  std::set<SeqId> swapped;
};

std::string str(const std::vector<Token>& v) {
  std::string s;
  for (Token t : v) s += std::to_string(t) + " ";
  return s;
}

void check_state(const KVCache& c, const Shadow& sh, const std::string& after) {
  std::vector<SeqId> got = c.sequences();
  std::sort(got.begin(), got.end());
  std::vector<SeqId> want;
  for (const auto& [s, toks] : sh.seqs) want.push_back(s);
  VIREO_FUZZ_CHECK(got == want, "sequence ids after " + after);
  std::int64_t max_blocks = 0, sum_blocks = 0;
  for (const auto& [s, toks] : sh.seqs) {
    VIREO_FUZZ_CHECK(c.contains(s), "contains() after " + after);
    VIREO_FUZZ_CHECK(c.is_swapped(s) == (sh.swapped.count(s) == 1), "is_swapped after " + after);
    VIREO_FUZZ_CHECK(c.length(s) == std::int64_t(toks.size()), "length of " + std::to_string(s) + " after " + after);
    const auto held = c.tokens(s);
    VIREO_FUZZ_CHECK(std::vector<Token>(held.begin(), held.end()) == toks,
                     "tokens of " + std::to_string(s) + " after " + after + ": want " + str(toks));
    if (!sh.swapped.count(s)) {
      const std::int64_t b = (std::int64_t(toks.size()) + BLOCK - 1) / BLOCK;
      max_blocks = std::max(max_blocks, b);
      sum_blocks += b;
    }
  }
  const KVCacheStats st = c.stats();
  VIREO_FUZZ_CHECK(st.blocks_total == BLOCKS, "blocks_total");
  VIREO_FUZZ_CHECK(st.blocks_used + st.blocks_cached + st.blocks_free == st.blocks_total,
                   "used + cached + free != total after " + after);
  VIREO_FUZZ_CHECK(c.available_blocks() == st.blocks_free + st.blocks_cached, "available_blocks after " + after);
  VIREO_FUZZ_CHECK(st.blocks_used >= max_blocks && st.blocks_used <= sum_blocks,
                   "blocks_used " + std::to_string(st.blocks_used) + " outside [" + std::to_string(max_blocks) + ", " +
                       std::to_string(sum_blocks) + "] after " + after);
  VIREO_FUZZ_CHECK(st.sequences == std::int64_t(sh.seqs.size()), "stats.sequences after " + after);
  VIREO_FUZZ_CHECK(st.swapped_sequences == std::int64_t(sh.swapped.size()), "stats.swapped_sequences after " + after);
  VIREO_FUZZ_CHECK(st.tokens_stored <= st.blocks_used * BLOCK, "tokens_stored after " + after);
}

/// The logits of the last of `toks`, computed from scratch in a fresh cache.
std::vector<float> reference(const std::vector<Token>& toks) {
  KVCache fresh(model(), {.num_blocks = 64, .block_size = BLOCK, .prefix_caching = false});
  const SeqId s = fresh.add_sequence();
  Batch b;
  b.add(s, toks, Last);
  const Logits l = model().forward(b, fresh);
  return std::vector<float>(l.row(0).begin(), l.row(0).end());
}

SeqId pick(fuzz::Bytes& in, const Shadow& sh) {
  if (sh.seqs.empty()) return SeqId(in.range(0, 40));
  auto it = sh.seqs.begin();
  std::advance(it, in.range(0, int(sh.seqs.size()) - 1));
  return it->first;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Model& m = model();
  fuzz::Bytes in(data, size);
  KVCache cache(m, {.num_blocks = BLOCKS, .block_size = BLOCK, .prefix_caching = (in.byte() & 1) != 0});
  Shadow sh;
  for (int step = 0; step < 48 && !in.empty(); ++step) {
    const int op = in.range(0, 9);
    const std::string name = "op " + std::to_string(op) + " at step " + std::to_string(step);
    try {
      switch (op) {
        case 0: sh.seqs[cache.add_sequence()] = {}; break;
        case 1: {  // a prompt starting with an existing sequence's tokens, then new ones
          std::vector<Token> prompt;
          if (!sh.seqs.empty() && (in.byte() & 1)) prompt = sh.seqs.at(pick(in, sh));
          for (int k = in.range(1, 9); k > 0; --k) prompt.push_back(Token(in.range(0, VOCAB - 1)));
          std::int64_t reused = -1;
          const SeqId s = cache.add_sequence(prompt, &reused);
          VIREO_FUZZ_CHECK(reused >= 0 && reused < std::int64_t(prompt.size()) && reused % BLOCK == 0,
                           "reused " + std::to_string(reused) + " of " + std::to_string(prompt.size()));
          sh.seqs[s] = std::vector<Token>(prompt.begin(), prompt.begin() + reused);
          break;
        }
        case 2: {
          const SeqId from = pick(in, sh);
          const SeqId s = cache.fork(from);
          sh.seqs[s] = sh.seqs.at(from);
          break;
        }
        case 3: {
          const SeqId s = pick(in, sh);
          const std::int64_t len = in.range(-1, 30);
          cache.truncate(s, len);
          sh.seqs.at(s).resize(std::size_t(len));
          break;
        }
        case 4: {
          const SeqId s = pick(in, sh);
          cache.remove(s);
          sh.seqs.erase(s);
          sh.swapped.erase(s);
          break;
        }
        case 5: {
          const SeqId s = pick(in, sh);
          cache.swap_out(s);
          sh.swapped.insert(s);
          break;
        }
        case 6: {
          const SeqId s = pick(in, sh);
          cache.swap_in(s);
          sh.swapped.erase(s);
          break;
        }
        case 7:
        case 8: {  // one step over up to 3 sequences (the same one may come twice)
          Batch b;
          std::map<SeqId, std::vector<Token>> added;
          for (int k = in.range(1, 3); k > 0; --k) {
            const SeqId s = pick(in, sh);
            for (int n = in.range(1, 6); n > 0; --n) {
              const Token t = Token(in.range(0, VOCAB));  // VOCAB itself is out of range
              b.add(s, t, (in.byte() & 3) != 0);
              added[s].push_back(t);
            }
          }
          const Logits l = m.forward(b, cache);
          for (const auto& [s, toks] : added) sh.seqs.at(s).insert(sh.seqs.at(s).end(), toks.begin(), toks.end());
          // Each row against a recomputation of its sequence up to its token.
          std::map<SeqId, std::size_t> seen;
          std::vector<std::size_t> pos(b.size());
          for (std::size_t i = 0; i < b.size(); ++i) pos[i] = seen[b.entries()[i].seq]++;
          for (std::size_t r = 0; r < l.rows(); ++r) {
            const SeqId s = l.seq(r);
            const std::vector<Token>& all = sh.seqs.at(s);
            const std::size_t upto = all.size() - added.at(s).size() + pos[l.batch_index(r)] + 1;
            const std::vector<float> ref = reference(std::vector<Token>(all.begin(), all.begin() + upto));
            double worst = 0, mag = 0;
            for (int v = 0; v < VOCAB; ++v) {
              worst = std::max(worst, double(std::fabs(l.row(r)[std::size_t(v)] - ref[std::size_t(v)])));
              mag = std::max(mag, double(std::fabs(ref[std::size_t(v)])));
            }
            VIREO_FUZZ_CHECK(worst <= 1e-4 * std::max(1.0, mag),
                             "logits row " + std::to_string(r) + " of sequence " + std::to_string(s) + " off by " +
                                 std::to_string(worst) + " at step " + std::to_string(step));
          }
          break;
        }
        default: {  // operations on an id that was never handed out must be refused
          const SeqId bogus = 1000 + in.range(0, 5);
          switch (in.range(0, 4)) {
            case 0: cache.remove(bogus); break;
            case 1: cache.fork(bogus); break;
            case 2: cache.truncate(bogus, 0); break;
            case 3: cache.swap_in(bogus); break;
            default: (void)cache.length(bogus); break;
          }
          fuzz::die("an operation on unknown sequence " + std::to_string(bogus) + " succeeded");
        }
      }
    } catch (const Error& e) {
      (void)e;
    } catch (const std::out_of_range&) {
      // The shadow's at() on an id the cache refused too: nothing changed.
    }
    check_state(cache, sh, name);
  }
  return 0;
}
