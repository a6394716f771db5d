// What a KVCache holds: the block manager, the backend's storage, and host copies of
// swapped-out sequences.
#pragma once
#include <map>
#include <memory>

#include "kv/block_manager.hpp"
#include "kv/kv_storage.hpp"

namespace vireo::detail {

struct KVCacheImpl {
  KVGeometry geo;
  std::unique_ptr<BlockManager> blocks;
  std::unique_ptr<KVStorage> storage;
  /// Swapped sequences: their blocks' bytes in table order.
  std::map<SeqId, std::shared_ptr<void>> swapped;
  /// The model this cache was shaped for (forward checks it is given the same one).
  const void* model_identity = nullptr;
  /// model_fingerprint() of that model: what a saved sequence is tied to.
  std::uint64_t model_fingerprint = 0;
  int vocab = 0;
};

}  // namespace vireo::detail
