// TextStream: a token stream turned into text that is safe to show as it arrives, ended at
// the first of a set of stop strings (OpenAI's `stop`).
//
// A stop string may span several tokens and may begin in the middle of one, so text that
// could still turn out to be the beginning of a stop string is held back until the next
// tokens settle it: push() releases the decoded text except its longest tail that is a
// proper prefix of some stop string (and an incomplete UTF-8 character, as StreamDecoder
// does). When a stop string completes, the text before it is released and everything from
// the stop string on is dropped, so the concatenated pieces never contain a stop string and
// never show text that is later taken back. Matching is on the decoded bytes (special
// tokens are skipped when skip_special, so they never match). Without stop strings the
// stream is a StreamDecoder.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "vireo/export.h"
#include "vireo/tokenizer.hpp"
#include "vireo/types.hpp"

VIREO_CXX_API_BEGIN
namespace vireo {

class TextStream {
 public:
  /// `tok` must outlive the stream. Throws InvalidArgument for an empty stop string.
  explicit TextStream(const Tokenizer& tok, std::vector<std::string> stop_strings = {}, bool skip_special = true);

  struct Piece {
    std::string text;      ///< text that became final with this token (may be empty)
    bool stopped = false;  ///< a stop string completed: `text` is the last piece
  };
  /// Add one token. After a stop, further tokens are ignored (empty pieces, stopped = true).
  Piece push(Token t);
  /// The end of the token stream without a stop: everything held back (an incomplete UTF-8
  /// tail as U+FFFD), itself cut at a stop string if the tail completes one. Empty after a
  /// stop; later calls return "".
  std::string flush();

  bool stopped() const noexcept { return stopped_; }
  /// Everything released so far (the concatenated pieces).
  std::string_view released() const noexcept { return std::string_view(text_).substr(0, released_); }
  /// Bytes held back now: what flush() would release at most.
  std::size_t held_back() const noexcept { return text_.size() - released_; }

 private:
  std::string settle(bool final);  // match / hold back after text_ grew; returns the release

  StreamDecoder decoder_;
  std::vector<std::string> stops_;
  std::string text_;            // decoded so far (released + held back), cut at a stop
  std::size_t released_ = 0;
  bool stopped_ = false;
};

}  // namespace vireo
VIREO_CXX_API_END
