// The one reader of the VIREO_* environment (src/util/tuning.cpp, docs/TUNING.md): unset
// variables keep their defaults, valid values are taken, and every malformed or out-of-range
// value is ignored with a warning through the log sink that names the variable and the value.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "util/tuning.hpp"
#include "vireo/log.hpp"

namespace {

const char* const kVars[] = {"VIREO_PDL", "VIREO_CUDA_PROFILE", "VIREO_DECODE_FUSION", "VIREO_QGEMV_MAX_TOKENS"};

// The C runtime's environment, which std::getenv reads. Windows has no setenv/unsetenv:
// _putenv_s sets, and setting a variable to "" removes it there.
void set_env(const char* k, const char* v) {
#ifdef _WIN32
  REQUIRE(_putenv_s(k, v) == 0);
#else
  REQUIRE(::setenv(k, v, 1) == 0);
#endif
}

void unset_env(const char* k) {
#ifdef _WIN32
  _putenv_s(k, "");
#else
  ::unsetenv(k);
#endif
}

/// Sets the variables for its lifetime and captures the warnings read_tuning() logs.
struct Env {
  std::vector<std::string> warnings;
  explicit Env(const std::vector<std::pair<const char*, const char*>>& vars) {
    for (const char* v : kVars) unset_env(v);
    for (const auto& [k, v] : vars) set_env(k, v);
    vireo::set_log_callback([this](vireo::LogLevel lvl, std::string_view m) {
      if (lvl == vireo::LogLevel::Warn) warnings.emplace_back(m);
    });
  }
  ~Env() {
    for (const char* v : kVars) unset_env(v);
    vireo::set_log_callback([](vireo::LogLevel lvl, std::string_view msg) {
      static const char* names[] = {"debug", "info", "warn", "error"};
      std::fprintf(stderr, "vireo %s: %.*s\n", names[int(lvl)], int(msg.size()), msg.data());
    });
  }
};

}  // namespace

TEST_CASE("tuning: defaults when nothing is set", "[cpu][tuning]") {
  Env env({});
  const vireo::detail::Tuning t = vireo::detail::read_tuning();
  CHECK(t.pdl);
  CHECK_FALSE(t.cuda_profile);
  CHECK(t.decode_fusion);
  CHECK(t.qgemv_max_tokens == 0);
  CHECK(env.warnings.empty());
}

TEST_CASE("tuning: valid values are read", "[cpu][tuning]") {
  Env env({{"VIREO_PDL", "0"},
           {"VIREO_CUDA_PROFILE", "1"},
           {"VIREO_DECODE_FUSION", "0"},
           {"VIREO_QGEMV_MAX_TOKENS", "4096"}});
  const vireo::detail::Tuning t = vireo::detail::read_tuning();
  CHECK_FALSE(t.pdl);
  CHECK(t.cuda_profile);
  CHECK_FALSE(t.decode_fusion);
  CHECK(t.qgemv_max_tokens == 4096);
  CHECK(env.warnings.empty());
}

TEST_CASE("tuning: a bad value keeps the default and warns, naming it", "[cpu][tuning]") {
  // Each: not a number, trailing characters, out of range, empty, a removed mode.
  const std::pair<const char*, const char*> bad[] = {{"VIREO_PDL", "off"},
                                                     {"VIREO_CUDA_PROFILE", "1x"},
                                                     {"VIREO_QGEMV_MAX_TOKENS", "-3"},
                                                     {"VIREO_QGEMV_MAX_TOKENS", "5000"},
                                                     {"VIREO_PDL", ""},
                                                     {"VIREO_DECODE_FUSION", "2"}};
  for (const auto& [var, value] : bad) {
#ifdef _WIN32
    if (!*value) continue;  // the C runtime cannot hold an empty variable (set_env("") removes it)
#endif
    INFO(var << "=\"" << value << "\"");
    Env env(std::vector<std::pair<const char*, const char*>>{{var, value}});
    const vireo::detail::Tuning t = vireo::detail::read_tuning();
    CHECK(t.pdl);
    CHECK_FALSE(t.cuda_profile);
    CHECK(t.decode_fusion);
    CHECK(t.qgemv_max_tokens == 0);
    REQUIRE(env.warnings.size() == 1);
    CHECK(env.warnings[0].find(var) != std::string::npos);
    CHECK(env.warnings[0].find(std::string("\"") + value + "\"") != std::string::npos);
    CHECK(env.warnings[0].find("docs/TUNING.md") != std::string::npos);
  }
}
