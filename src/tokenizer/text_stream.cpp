// TextStream (include/vireo/text_stream.hpp): StreamDecoder output, cut at stop strings with
// a held-back tail.
//
// Invariant after every call: text_[0, released_) has been handed out, and no stop string
// occurs in text_. A match can only start at or after released_: a match starting earlier
// would have had its beginning as a suffix of the text at the previous call, and that
// suffix is a prefix of the stop string, so it was held back. Hence each call searches
// text_[released_, end) only, and the held-back tail is the longest suffix of that range
// that is a proper prefix of some stop string. Costs O(held back + new bytes) per stop
// string per token, plus O(|stop|^2) for the tail check.
#include "vireo/text_stream.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "vireo/error.hpp"

namespace vireo {

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stop_strings, bool skip_special)
    : decoder_(tok, skip_special), stops_(std::move(stop_strings)) {
  for (std::size_t i = 0; i < stops_.size(); ++i)
    if (stops_[i].empty())
      throw Error(ErrorCode::InvalidArgument, fmt::format("stop string {} of {} is empty", i, stops_.size()));
}

std::string TextStream::settle(bool final) {
  const std::string_view open = std::string_view(text_).substr(released_);
  std::size_t cut = std::string_view::npos;  // earliest match start, relative to released_
  for (const std::string& s : stops_) cut = std::min(cut, open.find(s));
  if (cut != std::string_view::npos) {
    std::string out(open.substr(0, cut));
    text_.resize(released_ + cut);
    released_ = text_.size();
    stopped_ = true;
    return out;
  }
  std::size_t hold = 0;
  if (!final)
    for (const std::string& s : stops_)
      for (std::size_t k = std::min(s.size() - 1, open.size()); k > hold; --k)
        if (open.substr(open.size() - k) == std::string_view(s).substr(0, k)) {
          hold = k;
          break;
        }
  std::string out(open.substr(0, open.size() - hold));
  released_ += out.size();
  return out;
}

TextStream::Piece TextStream::push(Token t) {
  if (stopped_) return {{}, true};
  text_ += decoder_.push(t);
  std::string out = settle(false);
  return {std::move(out), stopped_};
}

std::string TextStream::flush() {
  if (stopped_) return {};
  text_ += decoder_.flush();
  return settle(true);
}

}  // namespace vireo
