// The model golden fixtures' reader (model_golden.txt, gemma3_golden.txt: "prompt <hex>",
// "ids ...", "logits i:v ...", "greedy ..." per case; other lines, such as the versions
// header, are skipped) and the plain greedy decoding the tests compare continuations with.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "vireo/vireo.hpp"

namespace vireo::test {

struct GoldenCase {
  std::string prompt;
  std::vector<Token> ids;
  std::vector<std::pair<int, double>> logits;  // (index, value) of the last position
  std::vector<Token> greedy;
};

inline std::vector<GoldenCase> load_golden_cases(const std::string& fixture_name) {
  std::ifstream in(fixture(fixture_name));
  INFO("fixture " << fixture_name);
  REQUIRE(in.good());
  std::vector<GoldenCase> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key;
    ss >> key;
    if (key == "prompt") {
      out.emplace_back();
      std::string hex;
      ss >> hex;
      for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.back().prompt += char(std::stoi(hex.substr(i, 2), nullptr, 16));
    } else if (key == "ids" || key == "greedy") {
      auto& v = key == "ids" ? out.back().ids : out.back().greedy;
      Token t;
      while (ss >> t) v.push_back(t);
    } else if (key == "logits") {
      std::string kv;
      while (ss >> kv) {
        const auto c = kv.find(':');
        out.back().logits.emplace_back(std::stoi(kv.substr(0, c)), std::stod(kv.substr(c + 1)));
      }
    }
  }
  return out;
}

/// n tokens of plain greedy decoding (argmax, ties to the lowest id) after `prompt`, one
/// forward per token, in a cache of its own.
inline std::vector<Token> greedy_tokens(const Model& m, std::span<const Token> prompt, int n) {
  KVCache cache(m, {.num_blocks = std::int64_t(prompt.size() + std::size_t(n)) / 16 + 2});
  const SeqId s = cache.add_sequence();
  Batch b;
  b.add(s, prompt, Last);
  std::vector<Token> out;
  Logits lg;
  for (int i = 0; i < n; ++i) {
    m.forward(b, cache, lg);
    const auto r = lg.row(0);
    out.push_back(Token(std::max_element(r.begin(), r.end()) - r.begin()));
    b.clear();
    b.add(s, out.back(), true);
  }
  return out;
}

}  // namespace vireo::test
