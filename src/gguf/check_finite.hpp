// Load-time check of a GGUF file's weights for values no forward pass can survive: NaN,
// infinities, and (optionally) finite values beyond a magnitude bound. Every tensor of every
// type the reader accepts is dequantized to fp32 in bounded chunks (a quantized block with a
// NaN or infinite fp16 scale dequantizes to non-finite values, so scales are covered too)
// and scanned; the first offending element is reported by tensor, index and value.
#pragma once
#include <functional>
#include <limits>
#include <string>

#include "vireo/gguf.hpp"

namespace vireo::gguf {

/// Throws Error(InvalidModel) "<source>: tensor '<name>' (<type>) element <i> is <value> ..."
/// for the first tensor holding a NaN, an infinity, or a value of magnitude above `max_abs`
/// (default: no bound on finite values). `source` names the model in the message (e.g. its
/// path). Reads every byte of every tensor: about as long as dequantizing the whole model.
/// progress(f) after each tensor (f = bytes checked / all tensor bytes); it may throw to stop.
void check_finite(const File& file, const std::string& source,
                  float max_abs = std::numeric_limits<float>::infinity(),
                  const std::function<void(float)>& progress = {});

}  // namespace vireo::gguf
