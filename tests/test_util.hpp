// Helpers shared by the tests: where the default model and the fixtures live.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace vireo::test {

/// The SmolLM2-135M-Instruct GGUF fetched by scripts/fetch-model.sh (or $VIREO_MODEL).
inline std::filesystem::path model_path() {
  if (const char* p = std::getenv("VIREO_MODEL")) return p;
  return std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(VIREO_FIXTURES_DIR) / name;
}

}  // namespace vireo::test
