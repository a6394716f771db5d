// Hand-written, linear-time pre-tokenizer rules (see pretokenize.hpp for the patterns).
//
// Notes on the two lookahead alternatives, which are the only places a regex engine would
// backtrack: for a whitespace run [i, k) followed by a non-space character,
//   \s+(?!\S)   matches [i, start of the last run character) when the run has >= 2
//               characters (the last one is left for " ?\p{L}+" and friends), and fails for
//               a single character, which then falls to \s+;
//   \s*[\r\n]+  matches [i, end of the last '\r'/'\n' inside the run), or fails if the run
//               has no line break.
// At the end of the piece the lookahead succeeds on the whole run. llama.cpp writes the
// GPT-2 regex without the final "|\s+"; the single whitespace character it leaves unmatched
// becomes a gap piece of its own, the same piece "\s+" makes.
#include "tokenizer/pretokenize.hpp"

#include <algorithm>

namespace vireo::detail {
namespace {

constexpr std::size_t kNoMatch = std::string_view::npos;

struct Cp {
  std::uint32_t cp;
  std::size_t len;  // 0 at the end of the piece
  CpClass cls;
};

inline Cp cp_at(std::string_view s, std::size_t i) noexcept {
  if (i >= s.size()) return {0, 0, CpClass::Other};
  Cp c{};
  c.len = utf8_decode(s, i, c.cp);
  c.cls = classify(c.cp);
  return c;
}

inline char lower_ascii(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

// Length of a contraction ('s 't 're 've 'm 'll 'd) at s[i] == '\'', or 0.
std::size_t contraction(std::string_view s, std::size_t i, bool icase) noexcept {
  auto at = [&](std::size_t k) -> char {
    if (k >= s.size()) return 0;
    return icase ? lower_ascii(s[k]) : s[k];
  };
  const char a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  const char b = at(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// End of the run of code points of class `cls` starting at i.
std::size_t run_of(std::string_view s, std::size_t i, CpClass cls) noexcept {
  while (i < s.size()) {
    Cp c = cp_at(s, i);
    if (c.cls != cls) break;
    i += c.len;
  }
  return i;
}

// Whitespace run starting at i (s[i] is whitespace): the run end, the start of its last
// character, and the end of its last '\r' / '\n' (0 when there is none).
struct SpaceRun {
  std::size_t end, last_start, last_nl_end;
};
SpaceRun space_run(std::string_view s, std::size_t i) noexcept {
  SpaceRun r{i, i, 0};
  while (i < s.size()) {
    Cp c = cp_at(s, i);
    if (c.cls != CpClass::Space) break;
    r.last_start = i;
    i += c.len;
    if (c.cp == '\r' || c.cp == '\n') r.last_nl_end = i;
  }
  r.end = i;
  return r;
}

// \s+(?!\S)|\s+ at a whitespace character.
std::size_t match_trailing_space(const SpaceRun& r, std::size_t i, std::size_t end) noexcept {
  if (r.end == end) return r.end;             // lookahead sees the end: whole run
  if (r.last_start > i) return r.last_start;  // leave the last space for the next piece
  return r.end;                               // single character: plain \s+
}

std::size_t match_gpt2(std::string_view s, std::size_t i) noexcept {
  const Cp c = cp_at(s, i);
  if (c.cp == '\'') {
    if (std::size_t n = contraction(s, i, false)) return i + n;
  }
  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional leading ' ' then a class run.
  std::size_t j = i;
  CpClass cls = c.cls;
  if (c.cp == ' ') {
    const Cp n = cp_at(s, i + 1);
    if (n.len != 0 && n.cls != CpClass::Space) {
      j = i + 1;
      cls = n.cls;
    }
  }
  if (cls != CpClass::Space) return run_of(s, j, cls);
  return match_trailing_space(space_run(s, i), i, s.size());
}

std::size_t match_llama3(std::string_view s, std::size_t i, std::size_t max_digits) noexcept {
  const Cp c = cp_at(s, i);
  if (c.cp == '\'') {
    if (std::size_t n = contraction(s, i, true)) return i + n;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.cls == CpClass::Letter) return run_of(s, i, CpClass::Letter);
  if (c.cp != '\r' && c.cp != '\n' && c.cls != CpClass::Number) {
    const Cp n = cp_at(s, i + c.len);
    if (n.len != 0 && n.cls == CpClass::Letter) return run_of(s, i + c.len, CpClass::Letter);
  }
  // \p{N}{1,max_digits}
  if (c.cls == CpClass::Number) {
    std::size_t j = i;
    for (std::size_t k = 0; k < max_digits; ++k) {
      const Cp d = cp_at(s, j);
      if (d.len == 0 || d.cls != CpClass::Number) break;
      j += d.len;
    }
    return j;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  std::size_t j = i;
  bool other = c.cls == CpClass::Other;
  if (c.cp == ' ') {
    const Cp n = cp_at(s, i + 1);
    if (n.len != 0 && n.cls == CpClass::Other) {
      j = i + 1;
      other = true;
    }
  }
  if (other) {
    j = run_of(s, j, CpClass::Other);
    while (j < s.size() && (s[j] == '\r' || s[j] == '\n')) ++j;
    return j;
  }
  // c is whitespace here: \s*[\r\n]+ | \s+(?!\S) | \s+
  const SpaceRun r = space_run(s, i);
  if (r.last_nl_end != 0) return r.last_nl_end;
  return match_trailing_space(r, i, s.size());
}

// Prefix? Body{min,max}, greedy: with the optional prefix taken first, then without it.
std::size_t match_run(const PreTokenizer::Rule& r, std::string_view s, std::size_t i) noexcept {
  auto body = [&](std::size_t j) -> std::size_t {
    std::uint32_t count = 0;
    while (j < s.size() && count < r.max) {
      const Cp c = cp_at(s, j);
      if (!r.body.has(c.cp)) break;
      j += c.len;
      ++count;
    }
    return count >= r.min ? j : kNoMatch;
  };
  if (r.prefix == PreTokenizer::Rule::Prefix::Whitespace) {
    const Cp c = cp_at(s, i);
    if (c.cls == CpClass::Space) {
      if (const std::size_t e = body(i + c.len); e != kNoMatch) return e;
    }
  }
  return body(i);
}

// Latin, Greek, Cyrillic, ... letters of DeepSeek-LLM's second rule (llama.cpp's list).
const std::vector<CodeRange> kDeepseekLatin = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D},
    {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5},
    {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A},
    {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57},
    {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124},
    {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139},
    {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B},
    {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06},
    {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
// [!-/:-~！-／：-～‘-‟　-。]: ASCII and fullwidth punctuation, quotes, ideographic space/comma/stop.
const std::vector<CodeRange> kDeepseekPunct = {{0x21, 0x2F},     {0x3A, 0x7E},     {0xFF01, 0xFF0F},
                                               {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}};
// [一-龥ࠀ-一가-퟿]: CJK ideographs, U+0800..U+4E00, Hangul syllables and Jamo.
const std::vector<CodeRange> kDeepseekCjk = {{0x4E00, 0x9FA5}, {0x800, 0x4E00}, {0xAC00, 0xD7FF}};

using Rule = PreTokenizer::Rule;
Rule op_rule(Rule::Op op) {
  Rule r;
  r.op = op;
  return r;
}
Rule run(CharClass body, std::uint32_t min = 1, std::uint32_t max = UINT32_MAX,
         Rule::Prefix prefix = Rule::Prefix::None) {
  Rule r = op_rule(Rule::Op::Run);
  r.body = std::move(body);
  r.min = min;
  r.max = max;
  r.prefix = prefix;
  return r;
}

struct NameKind {
  const char* name;
  PreKind kind;
  bool ignore_merges;
};
// tokenizer.ggml.pre names as llama.cpp's converter writes them, grouped as llama.cpp
// groups them (same regex list). "default" and an absent name keep the GPT-2 regex.
constexpr NameKind kNames[] = {
    {"default", PreKind::Gpt2, false},      {"gpt2", PreKind::Gpt2, false},
    {"gpt-2", PreKind::Gpt2, false},        {"phi-2", PreKind::Gpt2, false},
    {"mpt", PreKind::Gpt2, false},          {"olmo", PreKind::Gpt2, false},
    {"jais", PreKind::Gpt2, false},         {"llama-bpe", PreKind::Llama3, true},
    {"llama3", PreKind::Llama3, true},      {"llama-v3", PreKind::Llama3, true},
    {"falcon3", PreKind::Llama3, true},     {"pixtral", PreKind::Llama3, true},
    {"dbrx", PreKind::Llama3, false},       {"smaug-bpe", PreKind::Llama3, false},
    {"qwen2", PreKind::Qwen2, false},       {"deepseek-r1-qwen", PreKind::Qwen2, false},
    {"stablelm2", PreKind::Qwen2, false},   {"smollm", PreKind::SmolLM, false},
    {"starcoder", PreKind::SmolLM, false},  {"refact", PreKind::SmolLM, false},
    {"command-r", PreKind::SmolLM, false},  {"codeshell", PreKind::SmolLM, false},
    {"falcon", PreKind::Falcon, false},     {"deepseek-llm", PreKind::DeepseekLlm, false},
    {"deepseek-coder", PreKind::DeepseekCoder, false},
};

}  // namespace

std::optional<PreTokenizerChoice> pre_tokenizer_for(std::string_view name) {
  if (name.empty()) return PreTokenizerChoice{PreKind::Gpt2, false};
  for (const NameKind& n : kNames) {
    if (name == n.name) return PreTokenizerChoice{n.kind, n.ignore_merges};
  }
  return std::nullopt;
}

std::string supported_pre_tokenizers() {
  std::string out;
  for (const NameKind& n : kNames) {
    if (!out.empty()) out += ", ";
    out += n.name;
  }
  return out;
}

CharClass CharClass::make(std::uint8_t flags, std::vector<CodeRange> ranges) {
  CharClass c;
  c.flags = flags;
  std::sort(ranges.begin(), ranges.end(), [](const CodeRange& a, const CodeRange& b) { return a.first < b.first; });
  c.ranges = std::move(ranges);
  c.ascii[0] = c.ascii[1] = 0;
  for (std::uint32_t cp = 0; cp < 128; ++cp) {
    bool in = false;
    const CpClass k = classify(cp);
    in |= (flags & L) && k == CpClass::Letter;
    in |= (flags & N) && k == CpClass::Number;
    in |= (flags & S) && k == CpClass::Space;
    in |= (flags & P) && is_punct(cp);
    for (const CodeRange& r : c.ranges) in |= r.first <= cp && cp <= r.last;
    if (in) c.ascii[cp >> 6] |= std::uint64_t(1) << (cp & 63);
  }
  return c;
}

bool CharClass::has(std::uint32_t cp) const noexcept {
  if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
  if (cp == kInvalidCp) return false;
  if (flags & (L | N | S)) {
    const CpClass k = classify(cp);
    if (((flags & L) && k == CpClass::Letter) || ((flags & N) && k == CpClass::Number) ||
        ((flags & S) && k == CpClass::Space))
      return true;
  }
  if ((flags & P) && is_punct(cp)) return true;
  return !ranges.empty() && in_ranges(ranges.data(), ranges.size(), cp);
}

PreTokenizer::PreTokenizer(PreKind kind) : kind_(kind) {
  using C = CharClass;
  const Rule gpt2 = op_rule(Rule::Op::Gpt2);
  const CharClass newline = C::make(0, {{'\r', '\r'}, {'\n', '\n'}});
  switch (kind) {
    case PreKind::Gpt2: rules_ = {gpt2}; break;
    case PreKind::Llama3: rules_ = {op_rule(Rule::Op::Llama3)}; break;
    case PreKind::Qwen2: rules_ = {op_rule(Rule::Op::Qwen2)}; break;
    case PreKind::SmolLM: rules_ = {run(C::make(C::N), 1, 1), gpt2}; break;
    case PreKind::Falcon:
      rules_ = {run(C::make(C::P, {{'$', '$'}, {'+', '+'}, {'<', '>'}, {'^', '^'}, {'~', '~'}, {'|', '|'}, {'`', '`'}})),
                gpt2, run(C::make(0, {{'0', '9'}}), 3, 3)};
      break;
    case PreKind::DeepseekLlm:
      rules_ = {run(newline, 1, 1),
                run(C::make(0, kDeepseekLatin), 1, UINT32_MAX, Rule::Prefix::Whitespace),
                run(C::make(0, kDeepseekPunct), 1, UINT32_MAX, Rule::Prefix::Whitespace),
                op_rule(Rule::Op::SpacesAtEnd),
                run(C::make(0, kDeepseekCjk)),
                run(C::make(C::N))};
      break;
    case PreKind::DeepseekCoder:
      rules_ = {run(newline, 1, 1),
                run(C::make(C::L), 1, UINT32_MAX, Rule::Prefix::Whitespace),
                run(C::make(C::P), 1, UINT32_MAX, Rule::Prefix::Whitespace),
                run(C::make(0, kDeepseekCjk)),
                run(C::make(C::N), 1, 1)};
      break;
  }
}

void PreTokenizer::split_level(std::string_view s, std::size_t level, EmitFn emit, void* ctx) const {
  if (s.empty()) return;
  if (level == rules_.size()) {
    emit(ctx, s);
    return;
  }
  const Rule& r = rules_[level];
  std::size_t spaces_end = 0;  // SpacesAtEnd: end of the whitespace run last measured
  std::size_t gap = 0, i = 0;
  while (i < s.size()) {
    std::size_t e = kNoMatch;
    switch (r.op) {
      case Rule::Op::Gpt2: e = match_gpt2(s, i); break;
      case Rule::Op::Llama3: e = match_llama3(s, i, 3); break;
      case Rule::Op::Qwen2: e = match_llama3(s, i, 1); break;
      case Rule::Op::Run: e = match_run(r, s, i); break;
      case Rule::Op::SpacesAtEnd:  // \s+$; a run is measured once, at its first character
        if (i >= spaces_end && cp_at(s, i).cls == CpClass::Space) spaces_end = space_run(s, i).end;
        if (i < spaces_end && spaces_end == s.size()) e = s.size();
        break;
    }
    if (e == kNoMatch || e <= i) {
      i += cp_at(s, i).len;
      continue;
    }
    split_level(s.substr(gap, i - gap), level + 1, emit, ctx);
    split_level(s.substr(i, e - i), level + 1, emit, ctx);
    gap = i = e;
  }
  split_level(s.substr(gap), level + 1, emit, ctx);
}

}  // namespace vireo::detail
