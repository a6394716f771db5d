// Fuzz target: the tokenizer on the SmolLM2 vocabulary (byte-level BPE, loaded once from
// models/, or $VIREO_MODEL). The first input byte picks the mode and options:
//   text mode: encode the rest of the input (with or without special-token parsing and BOS),
//     then decode it and stream-decode it. Every id is in range; decode(encode(text)) is the
//     text whenever no special handling is asked for and every byte of it has a byte token
//     in the vocabulary (the bytes that have none are computed from the vocabulary itself);
//     the streamed pieces are well-formed UTF-8 and, for well-formed text, equal to it.
//   ids mode: the rest of the input as token ids (16-bit, modulo the vocabulary): decode and
//     stream-decode never fail, the stream is well-formed UTF-8 and equals decode() whenever
//     decode() is well-formed UTF-8.
#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "tokenizer/tokenizer_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;

namespace {

struct Vocab {
  Tokenizer tok;
  std::array<bool, 256> has_byte{};  // the vocabulary holds byte b's GPT-2 code point as a token
};

std::string utf8_of(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

const Vocab& vocab() {
  static const Vocab* v = [] {
    const gguf::File f = gguf::File::open(fuzz::model_path());
    auto* out = new Vocab{Tokenizer::from_gguf(f), {}};
    std::vector<std::string> texts;
    for (Token i = 0; i < out->tok.vocab_size(); ++i) texts.push_back(out->tok.token_text(i));
    std::sort(texts.begin(), texts.end());
    for (int b = 0; b < 256; ++b)
      out->has_byte[std::size_t(b)] =
          std::binary_search(texts.begin(), texts.end(), utf8_of(detail::byte_to_cp(std::uint8_t(b))));
    return out;
  }();
  return *v;
}

std::string stream(const Tokenizer& tok, const std::vector<Token>& ids, bool skip_special) {
  StreamDecoder d(tok, skip_special);
  std::string out;
  for (Token t : ids) {
    const std::string piece = d.push(t);
    VIREO_FUZZ_CHECK(fuzz::valid_utf8(piece), "a streamed piece is not well-formed UTF-8");
    out += piece;
  }
  out += d.flush();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Vocab& v = vocab();
  const Tokenizer& tok = v.tok;
  fuzz::Bytes in(data, size);
  const std::uint8_t mode = in.byte();
  if ((mode & 1) == 0) {
    const std::string text = in.rest();
    EncodeOptions o;
    o.parse_special = (mode & 2) != 0;
    o.add_special = (mode & 4) != 0;
    const std::vector<Token> ids = tok.encode(text, o);
    for (Token id : ids) VIREO_FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), "id " + std::to_string(id) + " out of range");
    const std::string back = tok.decode(ids);
    bool all_bytes = true;
    for (unsigned char c : text) all_bytes &= v.has_byte[c];
    if (!o.add_special && all_bytes) VIREO_FUZZ_CHECK(back == text, "decode(encode(text)) != text");
    const std::string streamed = stream(tok, ids, false);
    if (!o.add_special && all_bytes && fuzz::valid_utf8(text))
      VIREO_FUZZ_CHECK(streamed == text, "the streamed text differs from the input");
  } else {
    std::vector<Token> ids;
    while (in.size() >= 2) ids.push_back(Token(in.take<std::uint16_t>() % std::uint32_t(tok.vocab_size())));
    const bool skip = (mode & 2) != 0;
    const std::string whole = tok.decode(ids, skip);
    const std::string streamed = stream(tok, ids, skip);
    if (fuzz::valid_utf8(whole)) VIREO_FUZZ_CHECK(streamed == whole, "the streamed text differs from decode()");
    try {
      (void)tok.decode(std::vector<Token>{tok.vocab_size()});
      fuzz::die("decode accepted an id past the vocabulary");
    } catch (const Error&) {
    }
  }
  return 0;
}
