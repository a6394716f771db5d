// UTF-8 decoding/encoding and code point classification (see unicode.hpp). ASCII is answered
// from a small table; everything else by binary search over the generated range tables
// (a few hundred ranges per class, so ~10 comparisons).
#include "tokenizer/unicode.hpp"

#include <algorithm>
#include <array>

namespace vireo::detail {
bool in_ranges(const CodeRange* r, std::size_t n, std::uint32_t cp) noexcept {
  // First range whose last >= cp; cp is inside when that range starts at or before it.
  const CodeRange* end = r + n;
  const CodeRange* it =
      std::lower_bound(r, end, cp, [](const CodeRange& a, std::uint32_t v) { return a.last < v; });
  return it != end && it->first <= cp;
}

namespace {

CpClass classify_slow(std::uint32_t cp) noexcept {
  if (in_ranges(kLetterRanges, kLetterRanges_size, cp)) return CpClass::Letter;
  if (in_ranges(kNumberRanges, kNumberRanges_size, cp)) return CpClass::Number;
  if (in_ranges(kSpaceRanges, kSpaceRanges_size, cp)) return CpClass::Space;
  return CpClass::Other;
}

const std::array<CpClass, 128>& ascii_table() noexcept {
  static const std::array<CpClass, 128> t = [] {
    std::array<CpClass, 128> a{};
    for (std::uint32_t c = 0; c < 128; ++c) a[c] = classify_slow(c);
    return a;
  }();
  return t;
}

}  // namespace

CpClass classify(std::uint32_t cp) noexcept {
  if (cp < 128) return ascii_table()[cp];
  if (cp == kInvalidCp) return CpClass::Other;
  return classify_slow(cp);
}

bool is_punct(std::uint32_t cp) noexcept {
  return cp != kInvalidCp && in_ranges(kPunctRanges, kPunctRanges_size, cp);
}

std::size_t utf8_len(unsigned char c) noexcept {
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;  // continuation byte or overlong 2-byte lead
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  if (c < 0xF5) return 4;
  return 0;
}

std::size_t utf8_decode(std::string_view s, std::size_t i, std::uint32_t& cp) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const std::size_t len = utf8_len(b0);
  if (len == 1) {
    cp = b0;
    return 1;
  }
  if (len == 0 || i + len > s.size()) {
    cp = kInvalidCp;
    return 1;
  }
  std::uint32_t v = b0 & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      cp = kInvalidCp;
      return 1;
    }
    v = (v << 6) | (b & 0x3F);
  }
  // Reject overlong 3/4-byte forms, surrogates and values past U+10FFFF.
  if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
      (v >= 0xD800 && v <= 0xDFFF)) {
    cp = kInvalidCp;
    return 1;
  }
  cp = v;
  return len;
}

void utf8_append(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace vireo::detail
