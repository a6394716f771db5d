// The file of a LogProbRecord (a reference run's top-k log-probs, for KL divergence).
//
// Layout, little-endian: magic "VIREOLP1", then int32 ctx, stride, top_k, vocab,
// first_token, then uint64 n_tokens and n_scored, then int32 tokens[n_tokens],
// int32 ids[n_scored * top_k], float32 logp[n_scored * top_k], float32 target_logp[n_scored].
// The reader checks the header's sizes against the file's length before allocating.
#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "platform/path.hpp"
#include "vireo/error.hpp"
#include "vireo/quality.hpp"

namespace vireo {

namespace {

constexpr char kMagic[8] = {'V', 'I', 'R', 'E', 'O', 'L', 'P', '1'};

template <class T>
void put(std::ofstream& f, const T& v) {
  f.write(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
void put_vec(std::ofstream& f, const std::vector<T>& v) {
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

}  // namespace

void save_logprobs(const std::filesystem::path& path, const LogProbRecord& r) {
  const std::size_t n = r.n_scored();
  if (r.ids.size() != r.logp.size() || r.target_logp.size() != n)
    throw Error(ErrorCode::InvalidArgument, "save_logprobs: record arrays of inconsistent sizes");
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorCode::Io, fmt::format("cannot write {}", platform::path_to_utf8(path)));
  f.write(kMagic, sizeof kMagic);
  for (std::int32_t v : {r.ctx, r.stride, r.top_k, r.vocab, std::int32_t(r.first_token)}) put(f, v);
  put(f, std::uint64_t(r.tokens.size()));
  put(f, std::uint64_t(n));
  put_vec(f, r.tokens);
  put_vec(f, r.ids);
  put_vec(f, r.logp);
  put_vec(f, r.target_logp);
  f.flush();
  if (!f) throw Error(ErrorCode::Io, fmt::format("writing {} failed", platform::path_to_utf8(path)));
}

LogProbRecord load_logprobs(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(ErrorCode::Io, fmt::format("cannot open {}", platform::path_to_utf8(path)));
  const std::uint64_t size = std::uint64_t(f.tellg());
  f.seekg(0);
  constexpr std::uint64_t header = 8 + 5 * 4 + 2 * 8;
  char magic[8] = {};
  std::int32_t h[5] = {};
  std::uint64_t n_tokens = 0, n_scored = 0;
  if (size < header || !f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0)
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} is not a vireo log-prob file", platform::path_to_utf8(path)));
  f.read(reinterpret_cast<char*>(h), sizeof h);
  f.read(reinterpret_cast<char*>(&n_tokens), 8);
  f.read(reinterpret_cast<char*>(&n_scored), 8);
  LogProbRecord r;
  r.ctx = h[0], r.stride = h[1], r.top_k = h[2], r.vocab = h[3], r.first_token = h[4];
  if (r.top_k < 1 || r.vocab < 1 || r.top_k > r.vocab || r.ctx < 4)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: bad header (ctx {}, top_k {}, vocab {})", platform::path_to_utf8(path), r.ctx, r.top_k, r.vocab));
  // Sizes in elements; each bound keeps the products below far from overflow.
  const std::uint64_t body = size - header;
  if (n_tokens > body / 4 || n_scored > body / 4 / std::uint64_t(r.top_k) ||
      4 * (n_tokens + n_scored * (2 * std::uint64_t(r.top_k) + 1)) != body)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: {} tokens and {} positions of top-{} do not match the file's {} bytes",
                            platform::path_to_utf8(path), n_tokens, n_scored, r.top_k, size));
  r.tokens.resize(n_tokens);
  r.ids.resize(n_scored * std::uint64_t(r.top_k));
  r.logp.resize(r.ids.size());
  r.target_logp.resize(n_scored);
  f.read(reinterpret_cast<char*>(r.tokens.data()), std::streamsize(n_tokens * 4));
  f.read(reinterpret_cast<char*>(r.ids.data()), std::streamsize(r.ids.size() * 4));
  f.read(reinterpret_cast<char*>(r.logp.data()), std::streamsize(r.logp.size() * 4));
  f.read(reinterpret_cast<char*>(r.target_logp.data()), std::streamsize(n_scored * 4));
  if (!f) throw Error(ErrorCode::Io, fmt::format("reading {} failed", platform::path_to_utf8(path)));
  return r;
}

}  // namespace vireo
