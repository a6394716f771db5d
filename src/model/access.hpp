// The library's (and its tests' and tools') way into a Model's or KVCache's internals: the
// public headers expose no impl() accessor, only this friend.
#pragma once
#include "kv/kv_cache_impl.hpp"
#include "model/model_impl.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"

namespace vireo::detail {

struct Access {
  static ModelImpl& model(const Model& m) noexcept { return *m.impl_; }
  static KVCacheImpl& cache(KVCache& c) noexcept { return *c.impl_; }
  static const KVCacheImpl& cache(const KVCache& c) noexcept { return *c.impl_; }
};

}  // namespace vireo::detail
