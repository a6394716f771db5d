// vireo::Tokenizer: vocabulary tables, encode/decode, special tokens, streaming decode.
//
// encode: (1) split the text at verbatim tokens (control, user-defined, unknown types; only
// user-defined ones without parse_special) by leftmost-longest matching in a byte trie of
// those tokens (a vocabulary may hold thousands starting with '<', so the cost per position
// is bounded by the longest token, not by their number); (2) each plain fragment goes
// through the model's path:
//   gpt2  - pre-tokenizer pieces (pretokenize.cpp), each piece's bytes mapped to the byte
//           tokens of GPT-2's byte<->unicode table, then merged by rank (bpe.cpp);
//   llama - SentencePiece: "▁" prefix (add_space_prefix; at the start and after each special
//           token, as llama.cpp and HF's legacy Llama tokenizer do), ' ' -> "▁", score-ordered
//           merges over UTF-8 characters, unknown symbols spelled with <0xXX> byte tokens.
// decode: per-token byte strings precomputed at build time (byte-level mapping undone,
// "▁" -> ' ', <0xXX> -> byte), concatenated; special tokens as their text.
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <optional>
#include <cstring>

#include <fmt/format.h>

#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer/unicode.hpp"
#include "vireo/error.hpp"

namespace vireo {

using detail::TokenType;

struct Tokenizer::Impl {
  enum class Kind { Bpe, Spm };
  Kind kind = Kind::Bpe;
  std::string model, pre;
  std::optional<detail::PreTokenizer> pretok;  // BPE only
  bool ignore_merges = false;  // Llama-3: a piece that is a whole vocabulary entry is kept
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::string> bytes;  // decoded bytes of each token
  std::vector<float> scores;
  std::vector<std::int32_t> score_rank;  // SPM: 0 = highest score, equal scores share a rank
  std::int32_t score_rank_limit = 0;
  detail::TokenMap vocab;      // every entry
  detail::TokenMap mergeable;  // normal entries (SPM merge targets, Llama-3 whole pieces)
  detail::MergeTable merges;
  std::array<Token, 256> byte_tokens{};  // BPE: token of each byte's char; SPM: <0xXX>
  // Verbatim tokens in a byte trie: node 0 is the root, edges (node, byte) -> child node;
  // per node the verbatim token spelled by the path (the lowest id when several share a
  // text), and the user-defined one (matched even without parse_special).
  detail::MergeTable trie_edges;
  std::vector<Token> trie_any, trie_user;
  std::array<bool, 256> verbatim_first{};
  std::vector<std::uint8_t> eog;
  Token bos = -1, eos = -1, eot = -1, unk = -1;
  bool add_bos = false;
  bool add_space_prefix = true;
  std::string chat_template;
  bool gemma_turns = false;  // no template in the file, but <start_of_turn>/<end_of_turn> tokens

  int32_t n_vocab() const noexcept { return static_cast<int32_t>(tokens.size()); }
  bool verbatim(Token t) const noexcept {
    const TokenType k = types[std::size_t(t)];
    return k == TokenType::Control || k == TokenType::UserDefined || k == TokenType::Unknown;
  }
  bool special(Token t) const noexcept {
    const TokenType k = types[std::size_t(t)];
    return k == TokenType::Control || k == TokenType::Unknown;
  }
  void check(Token t) const {
    if (t < 0 || t >= n_vocab())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("token id {} is out of range for a vocabulary of {} tokens", t, n_vocab()));
  }
  // The bytes of text token t at its position: SentencePiece drops the "▁" prefix of the
  // first text token and of one that follows a special token (the prefix encode added).
  std::string_view text_bytes(Token t, bool after_special) const noexcept {
    std::string_view b = bytes[std::size_t(t)];
    if (kind == Kind::Spm && add_space_prefix && after_special && !b.empty() && b[0] == ' ')
      b.remove_prefix(1);
    return b;
  }

  void encode_fragment(std::string_view text, bool after_special, detail::MergeWorkspace& ws,
                       std::vector<Token>& out) const;
  // SentencePiece byte fallback: the <0xXX> token, else the unknown token.
  void push_byte(unsigned char b, std::vector<Token>& out) const {
    const Token t = byte_tokens[b];
    if (t >= 0) out.push_back(t);
    else if (unk >= 0) out.push_back(unk);
  }
};

namespace detail {

std::uint32_t byte_to_cp(std::uint8_t b) noexcept {
  // Printable Latin-1 bytes map to themselves; the other 68 bytes map, in order, to 256+n.
  auto printable = [](unsigned c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174; };
  if (printable(b)) return b;
  std::uint32_t n = 0;
  for (unsigned c = 0; c < b; ++c)
    if (!printable(c)) ++n;
  return 256 + n;
}

Tokenizer TokenizerAccess::build(TokenizerSpec spec) {
  auto im = std::make_unique<Tokenizer::Impl>();
  using Kind = Tokenizer::Impl::Kind;
  if (spec.model == "gpt2") im->kind = Kind::Bpe;
  else if (spec.model == "llama") im->kind = Kind::Spm;
  else
    throw Error(ErrorCode::Unsupported,
                fmt::format("tokenizer model \"{}\" is not supported (supported: gpt2, llama)", spec.model));
  const std::size_t n = spec.tokens.size();
  if (n == 0) throw Error(ErrorCode::InvalidModel, "tokenizer.ggml.tokens is empty");
  if (n > std::size_t(INT32_MAX))
    throw Error(ErrorCode::InvalidModel, fmt::format("vocabulary of {} tokens is too large", n));
  if (!spec.token_types.empty() && spec.token_types.size() != n)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("tokenizer.ggml.token_type has {} entries but there are {} tokens",
                            spec.token_types.size(), n));
  if (!spec.scores.empty() && spec.scores.size() != n)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("tokenizer.ggml.scores has {} entries but there are {} tokens",
                            spec.scores.size(), n));
  for (auto [name, id] : {std::pair{"bos", spec.bos}, {"eos", spec.eos}, {"eot", spec.eot}, {"unknown", spec.unk}}) {
    if (id < -1 || id >= Token(n))
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("tokenizer.ggml.{}_token_id = {} is out of range for {} tokens", name, id, n));
  }

  im->model = spec.model;
  im->pre = spec.pre;
  if (im->kind == Kind::Bpe) {
    const auto choice = pre_tokenizer_for(spec.pre);
    if (!choice)
      throw Error(ErrorCode::Unsupported,
                  fmt::format("pre-tokenizer \"{}\" (tokenizer.ggml.pre) is not supported (supported: {})",
                              spec.pre, supported_pre_tokenizers()));
    im->pretok.emplace(choice->kind);
    im->ignore_merges = choice->ignore_merges;
  }
  im->tokens = std::move(spec.tokens);
  im->types.resize(n, TokenType::Normal);
  for (std::size_t i = 0; i < spec.token_types.size(); ++i) {
    const std::int32_t t = spec.token_types[i];
    if (t < 0 || t > 6)
      throw Error(ErrorCode::InvalidModel, fmt::format("token {} has invalid token type {}", i, t));
    im->types[i] = TokenType(t);
  }
  im->scores = spec.scores.empty() ? std::vector<float>(n, 0.f) : std::move(spec.scores);
  {  // score order for the SentencePiece merge queue
    std::vector<Token> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = Token(i);
    // A NaN score (a broken file) ranks last instead of breaking the sort's ordering.
    auto key = [&](Token t) {
      const float s = im->scores[std::size_t(t)];
      return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
    };
    std::stable_sort(order.begin(), order.end(), [&](Token a, Token b) { return key(a) > key(b); });
    im->score_rank.assign(n, 0);
    std::int32_t r = 0;
    for (std::size_t k = 0; k < n; ++k) {
      if (k > 0 && key(order[k]) != key(order[k - 1])) ++r;
      im->score_rank[std::size_t(order[k])] = r;
    }
    im->score_rank_limit = n == 0 ? 0 : r + 1;
  }
  for (std::size_t i = 0; i < n; ++i) {
    im->vocab[im->tokens[i]] = Token(i);
    const TokenType k = im->types[i];
    if (k == TokenType::Normal || k == TokenType::Undefined) im->mergeable[im->tokens[i]] = Token(i);
  }

  // Byte tokens and decoded bytes.
  std::array<int, 512> cp_to_byte;
  cp_to_byte.fill(-1);
  for (unsigned b = 0; b < 256; ++b) {
    if (im->kind == Kind::Bpe) {
      const std::uint32_t cp = byte_to_cp(std::uint8_t(b));
      cp_to_byte[cp] = int(b);
      std::string s;
      utf8_append(s, cp);
      auto it = im->vocab.find(s);
      im->byte_tokens[b] = it == im->vocab.end() ? -1 : it->second;
    } else {
      auto it = im->vocab.find(fmt::format("<0x{:02X}>", b));
      im->byte_tokens[b] = it == im->vocab.end() ? -1 : it->second;
    }
  }
  im->bytes.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& txt = im->tokens[i];
    std::string& out = im->bytes[i];
    if (im->verbatim(Token(i))) {
      out = txt;
    } else if (im->kind == Kind::Bpe) {
      for (std::size_t k = 0; k < txt.size();) {
        std::uint32_t cp;
        const std::size_t l = utf8_decode(txt, k, cp);
        if (cp < cp_to_byte.size() && cp_to_byte[cp] >= 0) out += char(cp_to_byte[cp]);
        else out.append(txt, k, l);  // not from the byte table: keep as is
        k += l;
      }
    } else if (im->types[i] == TokenType::Byte && txt.size() == 6 && txt.rfind("<0x", 0) == 0 &&
               txt[5] == '>') {
      out += char(std::stoi(txt.substr(3, 2), nullptr, 16));
    } else {
      for (std::size_t k = 0; k < txt.size();) {
        if (txt.compare(k, 3, "\xE2\x96\x81") == 0) {
          out += ' ';
          k += 3;
        } else {
          out += txt[k++];
        }
      }
    }
  }

  // Merges: "left right", rank = line index. Entries naming unknown tokens are skipped (as
  // they can never apply), and a merge may never produce a special token.
  for (std::size_t r = 0; r < spec.merges.size(); ++r) {
    const std::string& m = spec.merges[r];
    const auto sp = m.find(' ', 1);
    if (sp == std::string::npos)
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("tokenizer.ggml.merges[{}] = \"{}\" has no space separator", r, m));
    const std::string_view l = std::string_view(m).substr(0, sp);
    const std::string_view rt = std::string_view(m).substr(sp + 1);
    auto il = im->vocab.find(l), ir = im->vocab.find(rt);
    auto ires = im->mergeable.find(std::string(l) + std::string(rt));
    if (il == im->vocab.end() || ir == im->vocab.end() || ires == im->mergeable.end()) continue;
    im->merges.add(il->second, ir->second, std::int32_t(r), ires->second);
  }
  if (im->kind == Kind::Bpe && !spec.merges.empty() && im->merges.size() == 0)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("none of the {} tokenizer.ggml.merges entries names vocabulary tokens",
                            spec.merges.size()));

  im->trie_any.assign(1, -1);
  im->trie_user.assign(1, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& txt = im->tokens[i];
    if (!im->verbatim(Token(i)) || txt.empty()) continue;
    im->verbatim_first[static_cast<unsigned char>(txt[0])] = true;
    std::int32_t node = 0;
    for (char c : txt) {
      const Token b = static_cast<unsigned char>(c);
      if (const detail::MergeResult* e = im->trie_edges.find(node, b)) {
        node = e->result;
      } else {
        const auto child = static_cast<std::int32_t>(im->trie_any.size());
        im->trie_edges.add(node, b, 0, child);
        im->trie_any.push_back(-1);
        im->trie_user.push_back(-1);
        node = child;
      }
    }
    if (im->trie_any[std::size_t(node)] < 0) im->trie_any[std::size_t(node)] = Token(i);
    if (im->types[i] == TokenType::UserDefined && im->trie_user[std::size_t(node)] < 0)
      im->trie_user[std::size_t(node)] = Token(i);
  }

  im->bos = spec.bos;
  im->eos = spec.eos;
  im->eot = spec.eot;
  im->unk = spec.unk;
  im->add_bos = spec.add_bos.value_or(im->kind == Kind::Spm);
  im->add_space_prefix = spec.add_space_prefix;
  im->chat_template = std::move(spec.chat_template);
  im->gemma_turns = im->vocab.find(std::string_view("<start_of_turn>")) != im->vocab.end() &&
                    im->vocab.find(std::string_view("<end_of_turn>")) != im->vocab.end();
  im->eog.assign(n, 0);
  if (im->eos >= 0) im->eog[std::size_t(im->eos)] = 1;
  if (im->eot >= 0) im->eog[std::size_t(im->eot)] = 1;
  for (const char* s : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<|endoftext|>",
                        "<end_of_turn>"}) {
    auto it = im->vocab.find(std::string_view(s));
    if (it != im->vocab.end()) im->eog[std::size_t(it->second)] = 1;
  }
  return Tokenizer(std::move(im));
}

}  // namespace detail

void Tokenizer::Impl::encode_fragment(std::string_view text, bool after_special,
                                      detail::MergeWorkspace& ws, std::vector<Token>& out) const {
  if (text.empty()) return;
  if (kind == Kind::Spm) {
    std::string norm;
    norm.reserve(text.size() + 3);
    if (add_space_prefix && after_special) norm += "\xE2\x96\x81";
    for (char c : text) {
      if (c == ' ') norm += "\xE2\x96\x81";
      else norm += c;
    }
    std::vector<detail::SpmSymbol> syms;
    detail::spm_merge(norm, mergeable, score_rank, score_rank_limit, ws, syms);
    for (const auto& s : syms) {
      if (s.id >= 0) {
        out.push_back(s.id);
      } else {
        for (std::size_t k = 0; k < s.len; ++k) push_byte(static_cast<unsigned char>(norm[s.start + k]), out);
      }
    }
    return;
  }
  std::string joined;
  pretok->split(text, [&](std::string_view piece) {
    if (piece.size() == 1) {
      const Token t = byte_tokens[static_cast<unsigned char>(piece[0])];
      if (t >= 0) out.push_back(t);
      return;
    }
    if (ignore_merges) {
      joined.clear();
      for (char c : piece) detail::utf8_append(joined, detail::byte_to_cp(static_cast<std::uint8_t>(c)));
      auto it = mergeable.find(joined);
      if (it != mergeable.end()) {
        out.push_back(it->second);
        return;
      }
    }
    // A byte whose character is not in the vocabulary is dropped before merging, so its
    // neighbours may merge across it (HF tokenizers' BPE skips a character it has no id
    // for when the model has no unknown token, as byte-level models do not; emitting the
    // file's unknown id instead would put e.g. SmolLM2's <|endoftext|> into the text).
    ws.ids.clear();
    for (char c : piece) {
      const Token t = byte_tokens[static_cast<unsigned char>(c)];
      if (t >= 0) ws.ids.push_back(t);
    }
    detail::bpe_merge(merges, ws);
    out.insert(out.end(), ws.ids.begin(), ws.ids.end());
  });
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(const Tokenizer& o) : impl_(std::make_unique<Impl>(*o.impl_)) {}
Tokenizer& Tokenizer::operator=(const Tokenizer& o) {
  if (this != &o) impl_ = std::make_unique<Impl>(*o.impl_);
  return *this;
}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {

// The encoder's one loop. Verbatim tokens (special ones when `parse_special`, user-defined
// ones always) are matched leftmost-longest; text between them is encoded as ordinary text.
// `caller` lists byte ranges ([begin, end), ordered) of text that came from a caller inside
// a rendered conversation: a special token matches only wholly outside them (user-defined
// ones, which are plain text, match anywhere, across the edges too).
std::vector<Token> encode_text(const detail::TokenizerAccess::Impl& im, std::string_view text, EncodeOptions opts,
                               std::span<const std::pair<std::size_t, std::size_t>> caller) {
  if (text.size() > std::size_t(INT32_MAX) / 4)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("text of {} bytes is too long to encode (limit {} bytes)", text.size(),
                            std::size_t(INT32_MAX) / 4));
  std::vector<Token> out;
  if (opts.add_special && im.add_bos && im.bos >= 0) out.push_back(im.bos);
  detail::MergeWorkspace ws;
  std::size_t seg = 0;
  bool after_special = true;
  std::size_t next = 0;  // the first caller range that does not end at or before i
  for (std::size_t i = 0; i < text.size();) {
    while (next < caller.size() && caller[next].second <= i) ++next;
    // Special tokens may match up to `limit`: the end of the template text i lies in (none
    // inside a caller range). Without parse_special only user-defined tokens are matched
    // (added tokens that are not special, e.g. GPT-NeoX's runs of spaces), as llama.cpp and
    // HF tokenizers do.
    const bool in_caller = next < caller.size() && caller[next].first <= i;
    const std::size_t limit = !opts.parse_special || in_caller ? i
                              : next < caller.size()           ? caller[next].first
                                                               : text.size();
    Token hit = -1;
    if (im.verbatim_first[static_cast<unsigned char>(text[i])]) {  // longest verbatim token at i
      std::int32_t node = 0;
      for (std::size_t k = i; k < text.size(); ++k) {
        const detail::MergeResult* e = im.trie_edges.find(node, static_cast<unsigned char>(text[k]));
        if (e == nullptr) break;
        node = e->result;
        const std::vector<Token>& ends = k < limit ? im.trie_any : im.trie_user;
        if (ends[std::size_t(node)] >= 0) hit = ends[std::size_t(node)];
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    im.encode_fragment(text.substr(seg, i - seg), after_special, ws, out);
    out.push_back(hit);
    after_special = true;
    i += im.tokens[std::size_t(hit)].size();
    seg = i;
  }
  if (seg < text.size()) im.encode_fragment(text.substr(seg), after_special || seg == 0, ws, out);
  return out;
}

}  // namespace

std::vector<Token> Tokenizer::encode(std::string_view text, EncodeOptions opts) const {
  return encode_text(*impl_, text, opts, {});
}

std::string Tokenizer::decode(std::span<const Token> tokens, bool skip_special) const {
  const Impl& im = *impl_;
  for (Token t : tokens) im.check(t);
  std::string out;
  bool after_special = true;
  for (Token t : tokens) {
    if (im.verbatim(t)) {
      if (!(skip_special && im.special(t))) out += im.bytes[std::size_t(t)];
      after_special = true;
      continue;
    }
    out += im.text_bytes(t, after_special);
    after_special = false;
  }
  return out;
}

std::string Tokenizer::token_bytes(Token t) const {
  impl_->check(t);
  return impl_->bytes[std::size_t(t)];
}

const std::string& Tokenizer::token_text(Token t) const {
  impl_->check(t);
  return impl_->tokens[std::size_t(t)];
}

int32_t Tokenizer::vocab_size() const noexcept { return impl_->n_vocab(); }
Token Tokenizer::bos() const noexcept { return impl_->bos; }
Token Tokenizer::eos() const noexcept { return impl_->eos; }
bool Tokenizer::is_eog(Token t) const noexcept {
  return t >= 0 && t < impl_->n_vocab() && impl_->eog[std::size_t(t)] != 0;
}
bool Tokenizer::is_special(Token t) const noexcept {
  return t >= 0 && t < impl_->n_vocab() && impl_->special(t);
}
const std::string& Tokenizer::model_kind() const noexcept { return impl_->model; }
const std::string& Tokenizer::pre_tokenizer() const noexcept { return impl_->pre; }

namespace {
detail::ChatText render_chat(const detail::TokenizerAccess::Impl& im, std::span<const ChatMessage> messages, bool gen) {
  // A file without tokenizer.chat_template (Gemma 3's GGUFs) gets Gemma's format when its
  // vocabulary has Gemma's turn tokens.
  if (im.chat_template.empty() && im.gemma_turns) return detail::render_gemma(messages, gen);
  return detail::render_chat_template(im.chat_template, messages, gen);
}
}  // namespace

std::string Tokenizer::apply_chat_template(std::span<const ChatMessage> messages,
                                           bool add_generation_prompt) const {
  return render_chat(*impl_, messages, add_generation_prompt).text;
}

std::vector<Token> Tokenizer::encode_chat(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                          bool add_special) const {
  const detail::ChatText chat = render_chat(*impl_, messages, add_generation_prompt);
  return encode_text(*impl_, chat.text, {.add_special = add_special, .parse_special = true}, chat.caller);
}

// ---- StreamDecoder ---------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(&tok), skip_special_(skip_special) {}

std::string StreamDecoder::push(Token t) {
  const Tokenizer::Impl& im = *tok_->impl_;
  im.check(t);
  if (im.verbatim(t)) {
    after_special_ = true;
    if (!(skip_special_ && im.special(t))) pending_ += im.bytes[std::size_t(t)];
  } else {
    pending_ += im.text_bytes(t, after_special_);
    after_special_ = false;
  }
  // Emit every complete character; hold back a valid but unfinished tail; replace bytes
  // that can never start or continue a character by U+FFFD.
  std::string out;
  std::size_t i = 0;
  while (i < pending_.size()) {
    const auto lead = static_cast<unsigned char>(pending_[i]);
    const std::size_t len = detail::utf8_len(lead);
    if (len > 1 && i + len > pending_.size()) {
      bool prefix_ok = true;
      for (std::size_t k = i + 1; k < pending_.size(); ++k)
        prefix_ok &= (static_cast<unsigned char>(pending_[k]) & 0xC0) == 0x80;
      if (prefix_ok) break;  // wait for the rest of this character
    }
    std::uint32_t cp;
    const std::size_t l = detail::utf8_decode(pending_, i, cp);
    if (cp == detail::kInvalidCp) out += "\xEF\xBF\xBD";
    else out.append(pending_, i, l);
    i += l;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = pending_.empty() ? std::string() : std::string("\xEF\xBF\xBD");
  pending_.clear();
  return out;
}

}  // namespace vireo
