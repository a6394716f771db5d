// A model's fingerprint: a 64-bit hash that tells two models apart without reading all of
// their weights (what a saved KV file is tied to).
#pragma once
#include <cstdint>

namespace vireo::detail {
struct ModelImpl;

/// FNV-1a over the family, the shapes, and every weight tensor's type, shape and first and
/// last 256 bytes. Two loads of the same file give the same value; different weights of the
/// same shape almost surely differ in those bytes.
std::uint64_t model_fingerprint(const ModelImpl& m) noexcept;

}  // namespace vireo::detail
