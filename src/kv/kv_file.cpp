// KVCache::save / restore: one sequence's tokens and K/V in a file.
//
// Format (little-endian), version 1:
//   magic "VIREOKV\0", u32 version, u32 reserved (0),
//   u64 model fingerprint (model/fingerprint.hpp), u32 n_layers, u32 n_kv_heads,
//   u32 head_dim, u32 block_size, u32 dtype (0 f32, 1 f16, 2 bf16), u32 int8 (0 / 1),
//   u64 n_tokens, u64 bytes_per_block,
//   i32 tokens[n_tokens],
//   ceil(n_tokens / block_size) blocks of bytes_per_block bytes, each as KVStorage's host
//   copy of a block (per layer its runs: K, V; int8: K values, K scales, V values, V scales),
//   the slots past the last token zeroed (a GPU block's tail may hold another sequence's rows),
//   u64 checksum of everything before it (64-bit FNV-1a over 8-byte little-endian words, the
//   tail bytes one by one).
#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "kv/kv_cache_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"

namespace vireo {
namespace {

constexpr char kMagic[8] = {'V', 'I', 'R', 'E', 'O', 'K', 'V', '\0'};
constexpr std::uint32_t kVersion = 1;

struct Header {
  std::uint64_t fingerprint = 0;
  std::uint32_t n_layers = 0, n_kv_heads = 0, head_dim = 0, block_size = 0, dtype = 0, int8 = 0;
  std::uint64_t n_tokens = 0, bytes_per_block = 0;
};
constexpr std::size_t kHeaderBytes = 8 + 4 + 4 + 8 + 6 * 4 + 8 + 8;

struct Checksum {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const unsigned char* p, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w = 0;
      for (int k = 7; k >= 0; --k) w = (w << 8) | p[i + std::size_t(k)];
      h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
};

void put_u32(std::vector<unsigned char>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_u64(std::vector<unsigned char>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
std::uint64_t get_le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Header header_of(const detail::KVCacheImpl& im, std::uint64_t n_tokens) {
  const detail::KVGeometry& g = im.geo;
  Header h;
  h.fingerprint = im.model_fingerprint;
  h.n_layers = std::uint32_t(g.n_layers);
  h.n_kv_heads = std::uint32_t(g.n_kv_heads);
  h.head_dim = std::uint32_t(g.head_dim);
  h.block_size = std::uint32_t(g.block_size);
  h.dtype = std::uint32_t(g.dtype);
  h.int8 = g.int8 ? 1 : 0;
  h.n_tokens = n_tokens;
  h.bytes_per_block = g.bytes_per_block();
  return h;
}

// Zero the slots [fill, block_size) of one block's host copy: every run is slot-major.
void zero_tail(const detail::KVGeometry& g, unsigned char* block, int fill) {
  const std::size_t slots = std::size_t(g.block_size), kvh = std::size_t(g.n_kv_heads);
  std::vector<std::size_t> runs;  // bytes of one slot in each run of a layer
  if (g.int8) runs = {kvh * std::size_t(g.head_dim), kvh * sizeof(float), kvh * std::size_t(g.head_dim), kvh * sizeof(float)};
  else runs = {kvh * g.row_bytes(), kvh * g.row_bytes()};
  unsigned char* p = block;
  for (int l = 0; l < g.n_layers; ++l)
    for (std::size_t per_slot : runs) {
      std::memset(p + std::size_t(fill) * per_slot, 0, (slots - std::size_t(fill)) * per_slot);
      p += slots * per_slot;
    }
}

[[noreturn]] void bad_file(const std::filesystem::path& path, const std::string& why) {
  throw Error(ErrorCode::InvalidArgument, fmt::format("KV file {}: {}", path.string(), why));
}

}  // namespace

void KVCache::save(SeqId seq, const std::filesystem::path& path) const {
  const detail::KVCacheImpl& im = *impl_;
  const auto& bm = *im.blocks;
  if (!bm.contains(seq)) throw Error(ErrorCode::InvalidArgument, fmt::format("save: unknown sequence {}", seq));
  const std::span<const Token> toks = bm.tokens(seq);
  const std::size_t bpb = im.geo.bytes_per_block();
  const std::size_t bs = std::size_t(im.geo.block_size);
  const std::size_t n_blocks = (toks.size() + bs - 1) / bs;

  std::vector<unsigned char> data(n_blocks * bpb);
  if (bm.is_swapped(seq)) {
    std::memcpy(data.data(), im.swapped.at(seq).get(), data.size());
  } else {
    const auto table = bm.block_table(seq);
    for (std::size_t i = 0; i < n_blocks; ++i) im.storage->read_block(table[i], data.data() + i * bpb);
  }
  if (const std::size_t fill = toks.size() % bs; fill != 0)
    zero_tail(im.geo, data.data() + (n_blocks - 1) * bpb, int(fill));

  const Header h = header_of(im, toks.size());
  std::vector<unsigned char> head(kMagic, kMagic + 8);
  put_u32(head, kVersion);
  put_u32(head, 0);
  put_u64(head, h.fingerprint);
  for (std::uint32_t v : {h.n_layers, h.n_kv_heads, h.head_dim, h.block_size, h.dtype, h.int8}) put_u32(head, v);
  put_u64(head, h.n_tokens);
  put_u64(head, h.bytes_per_block);
  for (Token t : toks) put_u32(head, std::uint32_t(t));
  Checksum sum;
  sum.add(head.data(), head.size());
  sum.add(data.data(), data.size());
  std::vector<unsigned char> tail;
  put_u64(tail, sum.h);

  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(ErrorCode::Io, fmt::format("save: cannot create {}", tmp.string()));
    f.write(reinterpret_cast<const char*>(head.data()), std::streamsize(head.size()));
    f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    f.write(reinterpret_cast<const char*>(tail.data()), std::streamsize(tail.size()));
    f.close();
    if (!f) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw Error(ErrorCode::Io, fmt::format("save: writing {} failed (disk full?)", tmp.string()));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(ErrorCode::Io, fmt::format("save: cannot move {} into place: {}", path.string(), ec.message()));
  }
}

SeqId KVCache::restore(const std::filesystem::path& path) {
  detail::KVCacheImpl& im = *impl_;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorCode::Io, fmt::format("restore: cannot open {}", path.string()));
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(ErrorCode::Io, fmt::format("restore: cannot stat {}: {}", path.string(), ec.message()));
  if (size < kHeaderBytes + 8) bad_file(path, fmt::format("{} bytes is too short for a vireo KV file", size));

  std::vector<unsigned char> head(kHeaderBytes);
  f.read(reinterpret_cast<char*>(head.data()), std::streamsize(head.size()));
  if (!f) throw Error(ErrorCode::Io, fmt::format("restore: cannot read {}", path.string()));
  if (std::memcmp(head.data(), kMagic, 8) != 0) bad_file(path, "not a vireo KV file (bad magic)");
  const unsigned char* p = head.data() + 8;
  const auto version = std::uint32_t(get_le(p, 4));
  if (version != kVersion)
    bad_file(path, fmt::format("format version {} (this vireo reads version {})", version, kVersion));
  p += 8;
  Header h;
  h.fingerprint = get_le(p, 8);
  p += 8;
  std::uint32_t* fields[] = {&h.n_layers, &h.n_kv_heads, &h.head_dim, &h.block_size, &h.dtype, &h.int8};
  for (std::uint32_t* v : fields) {
    *v = std::uint32_t(get_le(p, 4));
    p += 4;
  }
  h.n_tokens = get_le(p, 8);
  h.bytes_per_block = get_le(p + 8, 8);

  const Header want = header_of(im, h.n_tokens);
  if (h.fingerprint != want.fingerprint)
    bad_file(path, "it was saved with another model (the weights' fingerprints differ)");
  if (h.n_layers != want.n_layers || h.n_kv_heads != want.n_kv_heads || h.head_dim != want.head_dim)
    bad_file(path, fmt::format("K/V shape {} layers x {} heads x {} differs from this cache's {} x {} x {}",
                               h.n_layers, h.n_kv_heads, h.head_dim, want.n_layers, want.n_kv_heads, want.head_dim));
  if (h.int8 != want.int8)
    bad_file(path, fmt::format("saved with {} K/V, this cache holds {}", h.int8 ? "int8" : "16/32-bit",
                               want.int8 ? "int8" : "16/32-bit"));
  if (h.dtype != want.dtype)
    bad_file(path, fmt::format("saved with K/V dtype {}, this cache holds {}",
                               h.dtype <= 2 ? to_string(DType(h.dtype)) : "unknown", to_string(DType(want.dtype))));
  if (h.block_size != want.block_size)
    bad_file(path, fmt::format("saved with block size {}, this cache's is {}", h.block_size, want.block_size));
  if (h.bytes_per_block != want.bytes_per_block)
    bad_file(path, fmt::format("{} bytes per block, expected {}", h.bytes_per_block, want.bytes_per_block));
  const std::uint64_t bs = h.block_size, n_blocks = (h.n_tokens + bs - 1) / bs;
  if (h.n_tokens > (size - kHeaderBytes) / 4 || n_blocks > (size - kHeaderBytes) / h.bytes_per_block ||
      size != kHeaderBytes + 4 * h.n_tokens + n_blocks * h.bytes_per_block + 8)
    bad_file(path, fmt::format("{} bytes does not hold the {} tokens its header announces", size, h.n_tokens));
  if (std::int64_t(n_blocks) > num_blocks())
    throw Error(ErrorCode::CacheFull, fmt::format("restore: {} tokens need {} blocks, the cache has {}", h.n_tokens,
                                                  n_blocks, num_blocks()));

  std::vector<unsigned char> tok_bytes(4 * h.n_tokens);
  f.read(reinterpret_cast<char*>(tok_bytes.data()), std::streamsize(tok_bytes.size()));
  const std::size_t data_bytes = std::size_t(n_blocks * h.bytes_per_block);
  std::shared_ptr<void> host = im.storage->alloc_host(data_bytes);
  auto* data = static_cast<unsigned char*>(host.get());
  f.read(reinterpret_cast<char*>(data), std::streamsize(data_bytes));
  unsigned char tail[8];
  f.read(reinterpret_cast<char*>(tail), 8);
  if (!f) throw Error(ErrorCode::Io, fmt::format("restore: cannot read {}", path.string()));
  Checksum sum;
  sum.add(head.data(), head.size());
  sum.add(tok_bytes.data(), tok_bytes.size());
  sum.add(data, data_bytes);
  if (sum.h != get_le(tail, 8)) bad_file(path, "checksum mismatch (the file is damaged)");

  std::vector<Token> toks(h.n_tokens);
  for (std::size_t i = 0; i < toks.size(); ++i) {
    toks[i] = Token(std::int32_t(std::uint32_t(get_le(tok_bytes.data() + 4 * i, 4))));
    if (toks[i] < 0 || toks[i] >= im.vocab)
      bad_file(path, fmt::format("token {} at position {} is outside the vocabulary [0, {})", toks[i], i, im.vocab));
  }
  auto& bm = *im.blocks;
  const SeqId seq = bm.add_swapped(toks);
  im.swapped[seq] = host;
  try {
    swap_in(seq);
  } catch (...) {
    im.swapped.erase(seq);
    bm.remove(seq);
    throw;
  }
  return seq;
}

}  // namespace vireo
