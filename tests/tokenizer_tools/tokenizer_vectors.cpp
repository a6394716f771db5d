// vireo-tokenizer-vectors: runs llama.cpp's tokenizer test vectors through vireo.
//
// llama.cpp ships vocabulary-only GGUF files (models/ggml-vocab-<name>.gguf) and, for most
// of them, test inputs and the expected ids (<file>.inp, <file>.out; the ids come from the
// model's Hugging Face tokenizer). This program reads them exactly as llama.cpp's
// tests/test-tokenizer-0.cpp does: the inputs are separated by "\n__ggml_vocab_test__\n",
// line i of .out holds the ids of input i, the cases are keyed by input text (a repeated
// input counts once), and each input is encoded without BOS/EOS and without parsing special
// tokens (add_special = false, parse_special = false).
//
//   vireo-tokenizer-vectors [--expect-refused name,name...] vocab.gguf...
//
// Prints one line per vocabulary: "<name>: <passed>/<cases> passed", "loaded (no test
// vectors)", or "refused: <the Error's message>". Exit status 1 when a loaded vocabulary
// mismatches on any case, or one is refused that is not in --expect-refused, or one in it is
// accepted; 0 otherwise.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

namespace {

std::string read_file(const std::string& path, bool& ok) {
  std::ifstream f(path, std::ios::binary);
  ok = f.good();
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// llama.cpp's read_tests: returns false when the files are missing or disagree in count.
bool read_tests(const std::string& inp, const std::string& outp,
                std::map<std::string, std::vector<vireo::Token>>& tests, std::string& why) {
  bool ok_in = false, ok_out = false;
  const std::string raw = read_file(inp, ok_in);
  const std::string out = read_file(outp, ok_out);
  if (!ok_in || !ok_out) {
    why = "no test vectors";
    return false;
  }
  std::vector<std::string> sout;
  {
    std::istringstream ss(out);
    for (std::string line; std::getline(ss, line);) sout.push_back(line);
  }
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> sinp;
  for (std::size_t pos = 0; pos < raw.size();) {
    const std::size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      sinp.push_back(raw.substr(pos));
      break;
    }
    sinp.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  if (sinp.size() != sout.size()) {
    why = std::to_string(sinp.size()) + " inputs but " + std::to_string(sout.size()) + " outputs";
    return false;
  }
  for (std::size_t i = 0; i < sinp.size(); ++i) {
    std::vector<vireo::Token> ids;
    std::istringstream ss(strip(sout[i]));
    for (long t; ss >> t;) ids.push_back(vireo::Token(t));
    tests[sinp[i]] = ids;
  }
  return true;
}

std::string name_of(const std::string& path) {
  std::string n = std::filesystem::path(path).filename().string();
  if (n.rfind("ggml-vocab-", 0) == 0) n = n.substr(11);
  if (n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0) n.resize(n.size() - 5);
  return n;
}

std::string show_ids(const std::vector<vireo::Token>& ids) {
  std::string s;
  for (vireo::Token t : ids) s += (s.empty() ? "" : " ") + std::to_string(t);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> expect_refused;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--expect-refused") && i + 1 < argc) {
      std::istringstream ss(argv[++i]);
      for (std::string n; std::getline(ss, n, ',');)
        if (!n.empty()) expect_refused.insert(n);
    } else {
      files.emplace_back(argv[i]);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: vireo-tokenizer-vectors [--expect-refused name,...] vocab.gguf...\n");
    return 2;
  }
  int failures = 0;
  std::size_t total_cases = 0, total_passed = 0;
  for (const std::string& path : files) {
    const std::string name = name_of(path);
    std::optional<vireo::Tokenizer> tok;
    try {
      tok.emplace(vireo::Tokenizer::from_gguf(vireo::gguf::File::open(path)));
    } catch (const vireo::Error& e) {
      const bool expected = expect_refused.count(name) != 0;
      std::printf("%-16s refused%s: %s\n", name.c_str(), expected ? "" : " (UNEXPECTED)", e.what());
      failures += !expected;
      continue;
    }
    if (expect_refused.count(name)) {
      std::printf("%-16s loaded, but it was expected to be refused\n", name.c_str());
      ++failures;
      continue;
    }
    std::map<std::string, std::vector<vireo::Token>> tests;
    std::string why;
    if (!read_tests(path + ".inp", path + ".out", tests, why)) {
      std::printf("%-16s loaded (%s, pre \"%s\"): %s\n", name.c_str(), tok->model_kind().c_str(),
                  tok->pre_tokenizer().c_str(), why.c_str());
      if (why != "no test vectors") ++failures;
      continue;
    }
    std::size_t passed = 0;
    for (const auto& [text, want] : tests) {
      std::vector<vireo::Token> got;
      try {
        got = tok->encode(text, {.add_special = false, .parse_special = false});
      } catch (const vireo::Error& e) {
        std::printf("    error on '%s': %s\n", text.c_str(), e.what());
        continue;
      }
      if (got == want) {
        ++passed;
      } else {
        std::printf("    mismatch on '%s'\n      want %s\n      got  %s\n", text.c_str(), show_ids(want).c_str(),
                    show_ids(got).c_str());
      }
    }
    std::printf("%-16s %zu/%zu passed (%s, pre \"%s\")\n", name.c_str(), passed, tests.size(),
                tok->model_kind().c_str(), tok->pre_tokenizer().c_str());
    total_cases += tests.size();
    total_passed += passed;
    failures += passed != tests.size();
  }
  std::printf("total: %zu/%zu cases passed\n", total_passed, total_cases);
  return failures == 0 ? 0 : 1;
}
