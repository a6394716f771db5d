// Medusa heads: K small residual blocks over a base model's final hidden state, each
// predicting one token further ahead with the base's own LM head (Cai et al. 2024). Head k
// maps the hidden state h_t of position t to logits for position t + 2 + k:
//   x = h_t; for each of its R blocks: x = x + silu(W x + b); logits = x . E^T
// (E: the base's output matrix). SpeculativeDecoder drafts a token tree from them and
// verifies the whole tree in one forward of the base (Batch::add_tree).
//
// Sidecar file (GGUF, written by scripts/train_drafter.py):
//   general.architecture   "medusa"
//   medusa.format_version  uint32, 1
//   medusa.head_count      uint32 K (1..8)
//   medusa.layer_count     uint32 R (1..4)
//   medusa.embedding_length uint32, the base's d_model
//   medusa.vocab_size      uint32, the base's vocabulary size
//   medusa.vocab_hash      string, 16 hex digits: FNV-1a 64 over the base's token texts,
//                          each followed by one 0 byte, in id order
//   medusa.{k}.{r}.weight  F32 (or F16) {d, d}; medusa.{k}.{r}.bias F32 {d}
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vireo/model.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

namespace detail { struct MedusaImpl; }

class MedusaHeads {
 public:
  /// Load a sidecar for `base` (which must outlive the heads). Throws Io / InvalidModel
  /// (truncated or hostile file, bad shapes, an unknown format version) and InvalidArgument
  /// (a sidecar made for another base: d_model, vocabulary size or hash differ), naming it.
  static MedusaHeads load(const std::filesystem::path& sidecar, const Model& base);

  MedusaHeads(MedusaHeads&&) noexcept;
  MedusaHeads& operator=(MedusaHeads&&) noexcept;
  ~MedusaHeads();

  int head_count() const noexcept;
  int layer_count() const noexcept;
  const Model& base() const noexcept;
  /// Logits of every head for one hidden state (d_model values): out[k] has the
  /// vocabulary's size.
  void logits(std::span<const float> hidden, std::vector<std::vector<float>>& out) const;

  /// FNV-1a 64 of a model's vocabulary as the sidecar records it (16 hex digits).
  static std::string vocab_hash(const Model& m);

 private:
  explicit MedusaHeads(std::unique_ptr<detail::MedusaImpl> impl);
  std::unique_ptr<detail::MedusaImpl> impl_;
};

}  // namespace vireo
VIREO_CXX_API_END
