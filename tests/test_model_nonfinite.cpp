// Weights that hold NaN / Inf are named as a model problem: a forward that produces a
// non-finite logit throws InvalidModel (the cache rolled back), and
// ModelOptions::check_weights refuses such a file at load, naming the tensor.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <limits>

#include "model/access.hpp"
#include "test_util.hpp"
#include "tiny_gguf.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

/// The tiny GGUF on disk with the first value of tensor `name` (F32) set to NaN.
std::filesystem::path poisoned_file(const std::string& name) {
  test::TinySpec s;
  const std::vector<std::byte> bytes = test::tiny_gguf(s);
  const gguf::File f = gguf::File::from_bytes(bytes);
  const gguf::TensorInfo& t = f.tensor(name);
  REQUIRE(t.type == gguf::TensorType::F32);
  // Where the tensor's first 16 bytes (random floats) sit in the image.
  const auto it = std::search(bytes.begin(), bytes.end(), t.data, t.data + 16);
  REQUIRE(it != bytes.end());
  std::vector<std::byte> out = bytes;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(out.data() + (it - bytes.begin()), &nan, sizeof nan);
  const auto p = std::filesystem::temp_directory_path() / "vireo-poisoned.gguf";
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
  return p;
}

}  // namespace

TEST_CASE("a NaN weight is reported as a model error, at forward or at load", "[cpu][model]") {
  const auto p = poisoned_file("blk.0.attn_q.weight");
  {
    const Model m = Model::load(p, {.n_threads = 1});
    KVCache c(m, {.num_blocks = 8});
    const SeqId s = c.add_sequence();
    Batch b;
    b.add(s, std::vector<Token>{10, 20, 30}, Last);
    try {
      (void)m.forward(b, c);
      FAIL("a forward over a NaN weight returned");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::InvalidModel);
      CHECK_THAT(std::string(e.what()), Catch::Contains("non-finite logit") && Catch::Contains("corrupt"));
    }
    CHECK(c.length(s) == 0);  // rolled back
  }
  CHECK_THROWS_WITH(Model::load(p, {.n_threads = 1, .check_weights = true}),
                    Catch::Contains("blk.0.attn_q.weight"));
  std::filesystem::remove(p);
}
