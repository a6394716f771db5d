// Tests of the GGUF reader and writer (gguf::File, gguf::Writer, gguf::Value).
//
// Round trips go Writer -> bytes -> File (in memory and through an mmapped temp file) for
// every value type, nested arrays and every tensor type. Hostile files are built byte by
// byte with a small independent encoder (Img below) so each one breaks exactly one rule, and
// each must throw vireo::Error with the right code and a message naming the offending value;
// every prefix of a valid file and thousands of random corruptions must throw or parse, never
// crash or allocate wildly (run once under -fsanitize=address,undefined).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;
using gguf::File;
using gguf::TensorType;
using gguf::Value;
using gguf::ValueType;

namespace {

/// Little-endian GGUF encoder independent of gguf::Writer, for hand-crafted (hostile) images.
struct Img {
  std::vector<std::byte> b;
  template <class T>
  Img& put(T v) {
    const std::size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Img& u32(std::uint32_t v) { return put(v); }
  Img& u64(std::uint64_t v) { return put(v); }
  Img& str(const std::string& s) {
    u64(s.size());
    for (char c : s) b.push_back(std::byte(c));
    return *this;
  }
  Img& header(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    for (char c : std::string("GGUF")) b.push_back(std::byte(c));
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Img& kv_u32(const std::string& k, std::uint32_t v) { return str(k).u32(4).u32(v); }
  Img& tensor(const std::string& name, std::vector<std::uint64_t> dims, std::uint32_t type,
              std::uint64_t offset) {
    str(name).u32(std::uint32_t(dims.size()));
    for (auto d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Img& pad(std::size_t a = 32) {
    while (b.size() % a) b.push_back(std::byte{0});
    return *this;
  }
  Img& zeros(std::size_t n) {
    b.resize(b.size() + n);
    return *this;
  }
};

/// Parses `bytes`, requiring vireo::Error with `code` and a message containing every needle.
void expect_error(const std::vector<std::byte>& bytes, ErrorCode code,
                  std::initializer_list<std::string> needles) {
  try {
    File::from_bytes(bytes);
    FAIL("parsed a file that should have been rejected");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const auto& n : needles) CHECK(std::string(e.what()).find(n) != std::string::npos);
  }
}

std::vector<std::byte> bytes_of(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> b(n);
  for (auto& x : b) x = std::byte(rng() & 0xFF);
  return b;
}

/// A small valid image exercising strings, arrays, nested arrays and two tensors whose sizes
/// are multiples of 32, so it has no trailing padding and every proper prefix is invalid.
std::vector<std::byte> small_image() {
  gguf::Writer w;
  w.set("general.architecture", Value::make_string("llama"));
  w.set("llama.block_count", Value::make_uint(ValueType::UInt32, 2));
  w.set("f", Value::make_float(ValueType::Float32, 0.5));
  w.set("b", Value::make_bool(true));
  w.set("toks", Value::make_array(ValueType::String, {Value::make_string("a"), Value::make_string("bc")}));
  w.set("nest", Value::make_array(ValueType::Array,
                                  {Value::make_array(ValueType::Int16, {Value::make_int(ValueType::Int16, -3)})}));
  w.add_tensor("w", TensorType::F16, {16}, random_bytes(32, 1));
  w.add_tensor("v", TensorType::F32, {8}, random_bytes(32, 2));
  return w.bytes();
}

}  // namespace

TEST_CASE("Writer -> File round trip of every value type", "[cpu][gguf]") {
  gguf::Writer w;
  w.set("u8", Value::make_uint(ValueType::UInt8, 255));
  w.set("i8", Value::make_int(ValueType::Int8, -128));
  w.set("u16", Value::make_uint(ValueType::UInt16, 65535));
  w.set("i16", Value::make_int(ValueType::Int16, -32768));
  w.set("u32", Value::make_uint(ValueType::UInt32, 4000000000u));
  w.set("i32", Value::make_int(ValueType::Int32, -2000000000));
  w.set("f32", Value::make_float(ValueType::Float32, -1.25e-3));
  w.set("bool", Value::make_bool(true));
  w.set("bool0", Value::make_bool(false));
  w.set("str", Value::make_string("héllo\n\0x"));
  w.set("empty", Value::make_string(""));
  w.set("u64", Value::make_uint(ValueType::UInt64, ~std::uint64_t(0)));
  w.set("i64", Value::make_int(ValueType::Int64, std::numeric_limits<std::int64_t>::min()));
  w.set("f64", Value::make_float(ValueType::Float64, 3.141592653589793));
  w.set("arr_f32", Value::make_array(ValueType::Float32, {Value::make_float(ValueType::Float32, 1.5),
                                                          Value::make_float(ValueType::Float32, -2)}));
  w.set("arr_empty", Value::make_array(ValueType::Int32, {}));
  // Packed arrays of every numeric type and bool, at their extremes.
  w.set("arr_u8", Value::make_array(ValueType::UInt8, {Value::make_uint(ValueType::UInt8, 0),
                                                       Value::make_uint(ValueType::UInt8, 255)}));
  w.set("arr_i8", Value::make_array(ValueType::Int8, {Value::make_int(ValueType::Int8, -128),
                                                      Value::make_int(ValueType::Int8, 127)}));
  w.set("arr_u16", Value::make_array(ValueType::UInt16, {Value::make_uint(ValueType::UInt16, 65535)}));
  w.set("arr_i16", Value::make_array(ValueType::Int16, {Value::make_int(ValueType::Int16, -32768)}));
  w.set("arr_u32", Value::make_array(ValueType::UInt32, {Value::make_uint(ValueType::UInt32, 4000000000u)}));
  w.set("arr_i32", Value::make_array(ValueType::Int32, {Value::make_int(ValueType::Int32, -2000000000),
                                                        Value::make_int(ValueType::Int32, 7)}));
  w.set("arr_u64", Value::make_array(ValueType::UInt64, {Value::make_uint(ValueType::UInt64, ~std::uint64_t(0))}));
  w.set("arr_i64", Value::make_array(ValueType::Int64,
                                     {Value::make_int(ValueType::Int64, std::numeric_limits<std::int64_t>::min())}));
  w.set("arr_f64", Value::make_array(ValueType::Float64, {Value::make_float(ValueType::Float64, 3.141592653589793),
                                                          Value::make_float(ValueType::Float64, -0.0)}));
  w.set("arr_bool", Value::make_array(ValueType::Bool, {Value::make_bool(true), Value::make_bool(false),
                                                        Value::make_bool(true)}));
  std::vector<Value> strs;
  for (int i = 0; i < 100; ++i) strs.push_back(Value::make_string(std::string(std::size_t(i), 'x')));
  w.set("arr_str", Value::make_array(ValueType::String, strs));
  // [[["a"], []], [["b", "c"]]]: three levels, inner arrays of different lengths.
  auto s = [](const char* x) { return Value::make_string(x); };
  Value inner1 = Value::make_array(ValueType::Array, {Value::make_array(ValueType::String, {s("a")}),
                                                      Value::make_array(ValueType::String, {})});
  Value inner2 = Value::make_array(ValueType::Array, {Value::make_array(ValueType::String, {s("b"), s("c")})});
  w.set("nested", Value::make_array(ValueType::Array, {inner1, inner2}));
  w.set("u32", Value::make_uint(ValueType::UInt32, 7));  // set() replaces, keeping the position

  for (std::uint32_t version : {2u, 3u}) {
    INFO("version " << version);
    const File f = File::from_bytes(w.bytes(version));
    CHECK(f.version() == version);
    CHECK(f.alignment() == 32);
    CHECK(f.tensors().empty());
    REQUIRE(f.metadata().size() == 28);
    CHECK(f.metadata()[0].first == "u8");
    CHECK(f.metadata()[4].first == "u32");
    CHECK(f.get("u8").as_uint() == 255);
    CHECK(f.get("u8").type() == ValueType::UInt8);
    CHECK(f.get("i8").as_int() == -128);
    CHECK(f.get("u16").as_uint() == 65535);
    CHECK(f.get("i16").as_int() == -32768);
    CHECK(f.get("u32").as_uint() == 7);
    CHECK(f.get("i32").as_int() == -2000000000);
    CHECK(f.get("f32").as_float() == double(-1.25e-3f));
    CHECK(f.get("f32").type() == ValueType::Float32);
    CHECK(f.get("bool").as_bool());
    CHECK_FALSE(f.get("bool0").as_bool());
    CHECK(f.get("str").as_string() == "héllo\n");  // the literal stops at \0
    CHECK(f.get("empty").as_string().empty());
    CHECK(f.get("u64").as_uint() == ~std::uint64_t(0));
    CHECK(f.get("i64").as_int() == std::numeric_limits<std::int64_t>::min());
    CHECK(f.get("f64").as_float() == 3.141592653589793);
    CHECK(f.get("arr_f32").array_type() == ValueType::Float32);
    REQUIRE(f.get("arr_f32").array_size() == 2);
    CHECK(f.get("arr_f32").at(1).as_float() == -2.0);
    CHECK(f.get("arr_f32").at(1).type() == ValueType::Float32);
    CHECK(f.get("arr_f32").as_float_array() == std::vector<double>{1.5, -2.0});
    CHECK(f.get("arr_empty").array_size() == 0);
    CHECK(f.get("arr_empty").as_int_array().empty());
    CHECK(f.get("arr_empty").array_type() == ValueType::Int32);
    CHECK(f.get("arr_u8").as_int_array() == std::vector<std::int64_t>{0, 255});
    CHECK(f.get("arr_u8").at(1).as_uint() == 255);
    CHECK(f.get("arr_u8").at(1).type() == ValueType::UInt8);
    CHECK(f.get("arr_i8").as_int_array() == std::vector<std::int64_t>{-128, 127});
    CHECK(f.get("arr_i8").at(0).as_int() == -128);
    CHECK(f.get("arr_u16").as_int_array() == std::vector<std::int64_t>{65535});
    CHECK(f.get("arr_i16").as_float_array() == std::vector<double>{-32768.0});
    CHECK(f.get("arr_u32").as_int_array() == std::vector<std::int64_t>{4000000000LL});
    CHECK(f.get("arr_i32").as_int_array() == std::vector<std::int64_t>{-2000000000, 7});
    CHECK(f.get("arr_u64").at(0).as_uint() == ~std::uint64_t(0));
    CHECK(f.get("arr_u64").as_float_array() == std::vector<double>{18446744073709551615.0});
    CHECK(f.get("arr_i64").at(0).as_int() == std::numeric_limits<std::int64_t>::min());
    CHECK(f.get("arr_i64").as_int_array() == std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min()});
    CHECK(f.get("arr_f64").at(0).as_float() == 3.141592653589793);
    CHECK(std::signbit(f.get("arr_f64").at(1).as_float()));
    CHECK(f.get("arr_bool").array_size() == 3);
    CHECK(f.get("arr_bool").at(0).as_bool());
    CHECK_FALSE(f.get("arr_bool").at(1).as_bool());
    CHECK(f.get("arr_bool").at(2).type() == ValueType::Bool);
    CHECK(f.get("arr_bool").as_int_array() == std::vector<std::int64_t>{1, 0, 1});
    REQUIRE(f.get("arr_str").as_array().size() == 100);
    CHECK(f.get("arr_str").array_size() == 100);
    CHECK(f.get("arr_str").at(42).as_string() == std::string(42, 'x'));
    CHECK(f.get("arr_str").as_array()[99].as_string() == std::string(99, 'x'));
    const auto& n = f.get("nested").as_array();
    REQUIRE(n.size() == 2);
    CHECK(f.get("nested").array_type() == ValueType::Array);
    REQUIRE(n[0].as_array().size() == 2);
    CHECK(n[0].as_array()[0].as_array()[0].as_string() == "a");
    CHECK(n[0].as_array()[1].as_array().empty());
    CHECK(n[0].as_array()[1].array_type() == ValueType::String);
    CHECK(n[1].as_array()[0].as_array()[1].as_string() == "c");
    CHECK(f.find("missing") == nullptr);
    CHECK_THROWS_AS(f.get("missing"), Error);
  }
}

TEST_CASE("Value accessors convert only representable values", "[cpu][gguf]") {
  CHECK(Value::make_int(ValueType::Int32, 5).as_uint() == 5);
  CHECK_THROWS_AS(Value::make_int(ValueType::Int32, -1).as_uint(), Error);
  CHECK_THROWS_AS(Value::make_uint(ValueType::UInt64, ~std::uint64_t(0)).as_int(), Error);
  CHECK(Value::make_uint(ValueType::UInt64, 1ull << 62).as_int() == std::int64_t(1ull << 62));
  CHECK(Value::make_uint(ValueType::UInt8, 3).as_float() == 3.0);
  CHECK(Value::make_bool(true).as_uint() == 1);
  try {
    Value::make_string("x").as_uint();
    FAIL("as_uint on a string");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
    CHECK(std::string(e.what()).find("string") != std::string::npos);
  }
  CHECK_THROWS_AS(Value::make_float(ValueType::Float32, 1).as_int(), Error);
  CHECK_THROWS_AS(Value::make_uint(ValueType::UInt8, 1).as_bool(), Error);
  CHECK_THROWS_AS(Value::make_uint(ValueType::UInt8, 1).as_string(), Error);
  CHECK_THROWS_AS(Value::make_uint(ValueType::UInt8, 1).as_array(), Error);
  CHECK_THROWS_AS(Value::make_uint(ValueType::UInt8, 256), Error);
  CHECK_THROWS_AS(Value::make_uint(ValueType::Int8, 1), Error);
  CHECK_THROWS_AS(Value::make_int(ValueType::Int16, 40000), Error);
  CHECK_THROWS_AS(Value::make_float(ValueType::String, 1), Error);
  CHECK_THROWS_AS(Value::make_array(ValueType::String, {Value::make_bool(true)}), Error);
}

namespace {
// Runs `f`, which must throw Error(code) whose message contains every string in `parts`.
template <class F>
void check_error(F&& f, ErrorCode code, std::initializer_list<const char*> parts) {
  try {
    f();
    FAIL("did not throw");
  } catch (const Error& e) {
    CHECK(e.code() == code);
    for (const char* p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
  }
}
}  // namespace

TEST_CASE("packed arrays: at(), typed accessors and their errors", "[cpu][gguf]") {
  const Value u8 = Value::make_array(ValueType::UInt8, {Value::make_uint(ValueType::UInt8, 9),
                                                        Value::make_uint(ValueType::UInt8, 200)});
  CHECK(u8.type() == ValueType::Array);
  CHECK(u8.array_size() == 2);
  CHECK(u8.at(1).as_uint() == 200);
  check_error([&] { (void)u8.at(2); }, ErrorCode::InvalidModel, {"index 2", "of 2"});
  check_error([&] { (void)u8.as_array(); }, ErrorCode::InvalidArgument,
              {"uint8", "at()", "as_int_array()", "as_float_array()"});
  CHECK(u8.as_float_array() == std::vector<double>{9.0, 200.0});

  const Value f32 = Value::make_array(ValueType::Float32, {Value::make_float(ValueType::Float32, 0.1)});
  CHECK(f32.at(0).as_float() == double(0.1f));  // stored as the float the file holds
  check_error([&] { (void)f32.as_int_array(); }, ErrorCode::InvalidModel, {"float32"});

  const Value bools = Value::make_array(ValueType::Bool, {Value::make_bool(true)});
  check_error([&] { (void)bools.as_float_array(); }, ErrorCode::InvalidModel, {"bool"});

  const Value big = Value::make_array(ValueType::UInt64, {Value::make_uint(ValueType::UInt64, 1),
                                                          Value::make_uint(ValueType::UInt64, ~std::uint64_t(0))});
  check_error([&] { (void)big.as_int_array(); }, ErrorCode::InvalidModel, {"element 1", "18446744073709551615"});

  const Value strs = Value::make_array(ValueType::String, {Value::make_string("p"), Value::make_string("q")});
  CHECK(strs.at(1).as_string() == "q");
  CHECK(strs.as_array().size() == 2);
  check_error([&] { (void)strs.at(5); }, ErrorCode::InvalidModel, {"index 5", "of 2"});
  check_error([&] { (void)strs.as_int_array(); }, ErrorCode::InvalidModel, {"string"});
  check_error([&] { (void)strs.as_float_array(); }, ErrorCode::InvalidModel, {"string"});

  const Value nested = Value::make_array(ValueType::Array, {u8, strs});
  CHECK(nested.at(0).at(1).as_uint() == 200);
  CHECK(nested.at(1).at(0).as_string() == "p");
  check_error([&] { (void)nested.as_int_array(); }, ErrorCode::InvalidModel, {"array"});

  const Value scalar = Value::make_int(ValueType::Int32, 3);
  check_error([&] { (void)scalar.array_size(); }, ErrorCode::InvalidModel, {"int32"});
  check_error([&] { (void)scalar.at(0); }, ErrorCode::InvalidModel, {"int32"});
  check_error([&] { (void)scalar.as_int_array(); }, ErrorCode::InvalidModel, {"int32"});

  // make_array checks every element of a packed type, too.
  check_error([&] {
    (void)Value::make_array(ValueType::Int16, {Value::make_int(ValueType::Int16, 1), Value::make_int(ValueType::Int32, 2)});
  }, ErrorCode::InvalidArgument, {"element 1", "int32", "int16"});

  // A Value is at most 56 bytes (one scalar slot, one payload variant), so the worst file
  // (8-byte empty strings in an array) costs at most 7x its size in Values.
  CHECK(sizeof(Value) <= 56);
}

TEST_CASE("from_gguf checks per-token array lengths against the tokens", "[cpu][gguf][tokenizer]") {
  // 256 byte tokens; token_type / scores of another non-zero length must be rejected naming
  // both counts; empty ones mean "absent".
  auto image = [](const char* key, Value per_token) {
    gguf::Writer w;
    w.set("tokenizer.ggml.model", Value::make_string("llama"));
    std::vector<Value> toks;
    for (int i = 0; i < 256; ++i) toks.push_back(Value::make_string(fmt::format("<0x{:02X}>", i)));
    w.set("tokenizer.ggml.tokens", Value::make_array(ValueType::String, std::move(toks)));
    w.set(key, std::move(per_token));
    return File::from_bytes(w.bytes());
  };
  auto n_of = [](ValueType t, std::size_t n, auto make) {
    std::vector<Value> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(make(i));
    return Value::make_array(t, std::move(v));
  };
  auto type6 = [](std::size_t) { return Value::make_uint(ValueType::UInt8, 6); };  // byte token
  auto score = [](std::size_t i) { return Value::make_float(ValueType::Float32, -double(i)); };
  CHECK(Tokenizer::from_gguf(image("tokenizer.ggml.token_type", n_of(ValueType::UInt8, 256, type6))).vocab_size() == 256);
  CHECK(Tokenizer::from_gguf(image("tokenizer.ggml.scores", n_of(ValueType::Float32, 256, score))).vocab_size() == 256);
  CHECK(Tokenizer::from_gguf(image("tokenizer.ggml.scores", n_of(ValueType::Float32, 0, score))).vocab_size() == 256);
  check_error([&] { (void)Tokenizer::from_gguf(image("tokenizer.ggml.token_type", n_of(ValueType::UInt8, 255, type6))); },
              ErrorCode::InvalidModel, {"tokenizer.ggml.token_type", "255", "256"});
  check_error([&] { (void)Tokenizer::from_gguf(image("tokenizer.ggml.scores", n_of(ValueType::Float32, 300, score))); },
              ErrorCode::InvalidModel, {"tokenizer.ggml.scores", "300", "256"});
  check_error([&] { (void)Tokenizer::from_gguf(image("tokenizer.ggml.scores", n_of(ValueType::Int32, 256, [](std::size_t) {
                      return Value::make_int(ValueType::Int32, 0); }))); },
              ErrorCode::InvalidModel, {"tokenizer.ggml.scores", "int32"});
}

TEST_CASE("a bool array element other than 0 or 1 is rejected with its offset", "[cpu][gguf]") {
  gguf::Writer w;
  w.set("bb", Value::make_array(ValueType::Bool, {Value::make_bool(false), Value::make_bool(true),
                                                  Value::make_bool(false)}));
  std::vector<std::byte> img = w.bytes();
  // header 24 + key (8 + 2) + value type 4 + element type 4 + count 8 = 50: the elements.
  const std::size_t at = 24 + 8 + 2 + 4 + 4 + 8;
  REQUIRE(img.size() >= at + 3);
  CHECK(img[at + 1] == std::byte{1});
  CHECK(File::from_bytes(img).get("bb").at(1).as_bool());
  img[at + 2] = std::byte{2};
  check_error([&] { (void)File::from_bytes(img); }, ErrorCode::InvalidModel,
              {"bool byte 2", fmt::format("offset {}", at + 2).c_str()});
}

TEST_CASE("Writer -> File round trip of every tensor type", "[cpu][gguf]") {
  struct T {
    const char* name;
    TensorType type;
    std::vector<std::uint64_t> shape;
  };
  const std::vector<T> ts = {{"f32", TensorType::F32, {3, 5}},
                             {"f16", TensorType::F16, {7}},
                             {"bf16", TensorType::BF16, {2, 2, 2, 2}},
                             {"q8_0", TensorType::Q8_0, {64, 3}},
                             {"q4_0", TensorType::Q4_0, {32, 2, 2}},
                             {"q4_1", TensorType::Q4_1, {96}}};
  for (std::uint64_t align : {32u, 64u, 8u}) {
    for (std::uint32_t version : {2u, 3u}) {
      INFO("alignment " << align << " version " << version);
      gguf::Writer w;
      w.set("general.name", Value::make_string("t"));
      std::vector<std::vector<std::byte>> datas;
      std::uint32_t seed = 10;
      for (const T& t : ts) {
        std::uint64_t n = 1;
        for (auto d : t.shape) n *= d;
        datas.push_back(random_bytes(gguf::row_bytes(t.type, n), seed++));
        w.add_tensor(t.name, t.type, t.shape, datas.back());
      }
      const auto img = w.bytes(version, align);
      const File f = File::from_bytes(img);
      CHECK(f.version() == version);
      CHECK(f.alignment() == align);
      CHECK(f.file_size() == img.size());
      CHECK((align == 32) == (f.find("general.alignment") == nullptr));
      REQUIRE(f.tensors().size() == ts.size());
      for (std::size_t i = 0; i < ts.size(); ++i) {
        const gguf::TensorInfo& ti = f.tensors()[i];
        INFO(ti.name);
        CHECK(ti.name == ts[i].name);
        CHECK(&f.tensor(ts[i].name) == &ti);
        CHECK(ti.type == ts[i].type);
        CHECK(ti.shape == ts[i].shape);
        CHECK(ti.size_bytes == datas[i].size());
        CHECK(ti.offset % align == 0);
        // data points at the same place relative to the first tensor as offset says.
        CHECK(std::uint64_t(ti.data - f.tensors()[0].data) == ti.offset - f.tensors()[0].offset);
        CHECK(std::memcmp(ti.data, datas[i].data(), datas[i].size()) == 0);
      }
      CHECK(f.find_tensor("nope") == nullptr);
      CHECK_THROWS_AS(f.tensor("nope"), Error);
    }
  }
  // A small F32 tensor through a real file and mmap.
  gguf::Writer w;
  const std::vector<float> vals = {1, -2, 3.5f, 0.25f};
  w.add_tensor("x", TensorType::F32, {2, 2}, bytes_of(vals));
  const auto path = std::filesystem::temp_directory_path() /
                    ("vireo_test_gguf_" + std::to_string(::getpid()) + ".gguf");
  w.write(path);
  {
    File f = File::open(path);
    File moved = std::move(f);
    const auto& t = moved.tensor("x");
    float got[4];
    gguf::dequantize(t.type, t.data, got, 4);
    CHECK(std::vector<float>(got, got + 4) == vals);
    CHECK(moved.file_size() == std::filesystem::file_size(path));
  }
  std::filesystem::remove(path);
}

TEST_CASE("Writer rejects bad tensors and settings", "[cpu][gguf]") {
  gguf::Writer w;
  CHECK_THROWS_AS(w.add_tensor("a", TensorType::Q8_0, {31}, random_bytes(34, 1)), Error);
  CHECK_THROWS_AS(w.add_tensor("a", TensorType::F32, {4}, random_bytes(15, 1)), Error);
  CHECK_THROWS_AS(w.add_tensor("a", TensorType::F32, {}, random_bytes(4, 1)), Error);
  CHECK_THROWS_AS(w.add_tensor("a", TensorType::F32, {1, 1, 1, 1, 1}, random_bytes(4, 1)), Error);
  CHECK_THROWS_AS(w.add_tensor("a", TensorType::F32, {0}, {}), Error);
  w.add_tensor("a", TensorType::F32, {1}, random_bytes(4, 1));
  CHECK_THROWS_AS(w.add_tensor("a", TensorType::F32, {1}, random_bytes(4, 1)), Error);
  CHECK_THROWS_AS(w.bytes(1), Error);
  CHECK_THROWS_AS(w.bytes(3, 48), Error);
  CHECK(File::from_bytes(w.bytes()).tensors().size() == 1);
}

TEST_CASE("hand-built baseline image parses", "[cpu][gguf]") {
  // Guards the hostile tests below: each differs from this one in one field only.
  Img m;
  m.header(3, 2, 1).kv_u32("general.alignment", 32);
  m.tensor("a", {32, 2}, 8, 0).tensor("b", {4}, 0, 96).pad().zeros(96 + 16);
  const File f = File::from_bytes(m.b);
  CHECK(f.tensor("a").size_bytes == 68);
  CHECK(f.tensor("b").offset == 96);
  CHECK(f.tensor("b").n_elements == 4);
}

TEST_CASE("hostile: magic and version", "[cpu][gguf]") {
  auto img = small_image();
  auto bad = img;
  bad[0] = std::byte('X');
  expect_error(bad, ErrorCode::InvalidModel, {"magic"});
  bad = img;
  bad[4] = std::byte{1};
  expect_error(bad, ErrorCode::Unsupported, {"version 1"});
  bad[4] = std::byte{4};
  expect_error(bad, ErrorCode::Unsupported, {"version 4"});
  bad[4] = std::byte{0};
  bad[7] = std::byte{3};  // 0x03000000: a big-endian v3 file
  expect_error(bad, ErrorCode::Unsupported, {"big-endian"});
  expect_error({}, ErrorCode::InvalidModel, {"truncated"});
}

TEST_CASE("hostile: truncation at every byte offset", "[cpu][gguf]") {
  const auto img = small_image();
  REQUIRE(File::from_bytes(img).tensors().size() == 2);
  for (std::size_t len = 0; len < img.size(); ++len) {
    INFO("prefix of " << len << " of " << img.size() << " bytes");
    REQUIRE_THROWS_AS(File::from_bytes(std::vector<std::byte>(img.begin(), img.begin() + long(len))), Error);
  }
}

TEST_CASE("hostile: random corruption throws vireo::Error or parses, never crashes", "[cpu][gguf]") {
  const auto img = small_image();
  std::mt19937 rng(123);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bad = img;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const std::size_t at = rng() % bad.size();
      // Mostly bit flips; sometimes plant a huge byte (0xFF) in a length's high bytes.
      bad[at] = (rng() % 4 == 0) ? std::byte{0xFF} : bad[at] ^ std::byte(1u << (rng() % 8));
    }
    try {
      const File f = File::from_bytes(bad);
      for (const auto& t : f.tensors()) CHECK(t.offset + t.size_bytes <= f.file_size());
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 1000);
}

TEST_CASE("hostile: absurd counts and lengths", "[cpu][gguf]") {
  Img a;
  a.header(3, 0, 1ull << 60);
  expect_error(a.b, ErrorCode::InvalidModel, {"kv count 1152921504606846976"});
  Img b;
  b.header(3, 1ull << 60, 0);
  expect_error(b.b, ErrorCode::InvalidModel, {"tensor count 1152921504606846976"});
  Img c;  // key length 2^63
  c.header(3, 0, 1).u64(1ull << 63).u32(4).u32(0);
  expect_error(c.b, ErrorCode::InvalidModel, {"string length 9223372036854775808"});
  Img d;  // string value length 2^63
  d.header(3, 0, 1).str("k").u32(8).u64(1ull << 63).zeros(8);
  expect_error(d.b, ErrorCode::InvalidModel, {"'k'", "9223372036854775808"});
  Img e;  // array count 2^62 of uint8
  e.header(3, 0, 1).str("arr").u32(9).u32(0).u64(1ull << 62).zeros(64);
  expect_error(e.b, ErrorCode::InvalidModel, {"'arr'", "4611686018427387904"});
  Img e2;  // 100 strings need 800 bytes: 400 is not enough even though 100 < 400
  e2.header(3, 0, 1).str("arr").u32(9).u32(8).u64(100).zeros(400);
  expect_error(e2.b, ErrorCode::InvalidModel, {"'arr'", "100 string"});
  Img f;  // n_dims 100
  f.header(3, 1, 0).str("t").u32(100).zeros(1000);
  expect_error(f.b, ErrorCode::InvalidModel, {"'t'", "n_dims 100"});
  Img f0;
  f0.header(3, 1, 0).str("t").u32(0).u32(0).u64(0).pad().zeros(64);
  expect_error(f0.b, ErrorCode::InvalidModel, {"'t'", "n_dims 0"});
  Img g;  // 2^32 * 2^32 overflows 64 bits
  g.header(3, 1, 0).tensor("t", {1ull << 32, 1ull << 32, 2}, 0, 0).pad().zeros(64);
  expect_error(g.b, ErrorCode::InvalidModel, {"'t'", "overflow"});
  Img g2;  // elements fit, bytes overflow: 2^62 F32 elements
  g2.header(3, 1, 0).tensor("t", {1ull << 31, 1ull << 31}, 0, 0).pad().zeros(64);
  expect_error(g2.b, ErrorCode::InvalidModel, {"'t'", "overflow"});
  Img g3;  // elements fit in bytes, but far exceed the file
  g3.header(3, 1, 0).tensor("t", {1ull << 20, 1ull << 20}, 0, 0).pad().zeros(64);
  expect_error(g3.b, ErrorCode::InvalidModel, {"'t'", "exceeds data section"});
  Img z;
  z.header(3, 1, 0).tensor("t", {4, 0}, 0, 0).pad().zeros(64);
  expect_error(z.b, ErrorCode::InvalidModel, {"'t'", "dimension 1 is 0"});
  Img deep;  // arrays nested 9 levels deep
  deep.header(3, 0, 1).str("deep").u32(9);
  for (int i = 0; i < 9; ++i) deep.u32(9).u64(1);
  deep.u32(0).u64(0);
  expect_error(deep.b, ErrorCode::InvalidModel, {"'deep'", "nested"});
}

TEST_CASE("hostile: unknown types", "[cpu][gguf]") {
  Img a;
  a.header(3, 0, 1).str("k").u32(13).u32(0);
  expect_error(a.b, ErrorCode::InvalidModel, {"'k'", "unknown value type 13"});
  Img b;
  b.header(3, 0, 1).str("k").u32(9).u32(77).u64(0);
  expect_error(b.b, ErrorCode::InvalidModel, {"'k'", "element type 77"});
  Img c;
  c.header(3, 1, 0).tensor("blk.0.w", {32}, 99, 0).pad().zeros(64);
  expect_error(c.b, ErrorCode::Unsupported, {"'blk.0.w'", "type 99"});
  Img d;  // IQ2_XXS (16) is a real ggml type that vireo does not read
  d.header(3, 1, 0).tensor("iq2", {256}, 16, 0).pad().zeros(128);
  expect_error(d.b, ErrorCode::Unsupported, {"'iq2'", "type 16 (IQ2_XXS)"});
  Img e;
  e.header(3, 0, 1).str("flag").u32(7).put(std::uint8_t{2});
  expect_error(e.b, ErrorCode::InvalidModel, {"'flag'", "bool"});
  Img f;  // ne[0] = 48 is not a multiple of Q4_0's 32
  f.header(3, 1, 0).tensor("q", {48, 2}, 2, 0).pad().zeros(64);
  expect_error(f.b, ErrorCode::InvalidModel, {"'q'", "ne[0] = 48", "32"});
  Img g;  // a K-quant row must hold whole 256-element super-blocks (576 does not)
  g.header(3, 1, 0).tensor("k", {576, 1}, 12, 0).pad().zeros(512);
  expect_error(g.b, ErrorCode::InvalidModel, {"'k'", "ne[0] = 576", "Q4_K", "256"});
}

TEST_CASE("hostile: offsets", "[cpu][gguf]") {
  Img a;  // 16 F32 = 64 bytes at offset 64 in a 96-byte data section
  a.header(3, 1, 0).tensor("blk.0.attn_q.weight", {16}, 0, 64).pad().zeros(96);
  expect_error(a.b, ErrorCode::InvalidModel,
               {"'blk.0.attn_q.weight'", "offset 64 + size 64 exceeds data section of 96 bytes"});
  Img b;
  b.header(3, 1, 0).tensor("t", {4}, 0, 4).pad().zeros(64);
  expect_error(b.b, ErrorCode::InvalidModel, {"'t'", "offset 4", "alignment 32"});
  Img c;  // offset + size wraps around 2^64
  c.header(3, 1, 0).tensor("t", {16}, 0, ~std::uint64_t(31)).pad().zeros(64);
  expect_error(c.b, ErrorCode::InvalidModel, {"'t'", "exceeds data section"});
  Img d;  // tensor records end, data section padding missing
  d.header(3, 1, 0).tensor("t", {1}, 0, 0);
  expect_error(d.b, ErrorCode::InvalidModel, {"data section"});
  Img e;  // two tensors sharing bytes
  e.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad().zeros(128);
  expect_error(e.b, ErrorCode::InvalidModel, {"'a'", "'b'", "overlap"});
}

TEST_CASE("hostile: alignment", "[cpu][gguf]") {
  for (std::uint32_t al : {0u, 3u, 48u}) {
    Img a;
    a.header(3, 1, 1).kv_u32("general.alignment", al).tensor("t", {4}, 0, 0).pad().zeros(64);
    expect_error(a.b, ErrorCode::InvalidModel, {"general.alignment " + std::to_string(al), "power of two"});
  }
  Img s;
  s.header(3, 0, 1).str("general.alignment").u32(8).str("32");
  expect_error(s.b, ErrorCode::InvalidModel, {"general.alignment", "string"});
  // A 64-aligned file whose tensor is only 32-aligned.
  Img m;
  m.header(3, 1, 1).kv_u32("general.alignment", 64).tensor("t", {4}, 0, 32).pad(64).zeros(128);
  expect_error(m.b, ErrorCode::InvalidModel, {"'t'", "offset 32", "alignment 64"});
}

TEST_CASE("hostile: duplicates and empty names", "[cpu][gguf]") {
  Img a;
  a.header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2);
  expect_error(a.b, ErrorCode::InvalidModel, {"duplicate metadata key 'k'"});
  Img b;
  b.header(3, 2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad().zeros(64);
  expect_error(b.b, ErrorCode::InvalidModel, {"duplicate tensor name 'w'"});
  Img c;
  c.header(3, 0, 1).kv_u32("", 1);
  expect_error(c.b, ErrorCode::InvalidModel, {"empty key"});
  Img d;
  d.header(3, 1, 0).tensor("", {8}, 0, 0).pad().zeros(32);
  expect_error(d.b, ErrorCode::InvalidModel, {"empty name"});
}

TEST_CASE("File::open reports missing, non-regular and empty files", "[cpu][gguf]") {
  try {
    File::open("/nonexistent/dir/model.gguf");
    FAIL("opened a missing file");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Io);
    CHECK(std::string(e.what()).find("/nonexistent/dir/model.gguf") != std::string::npos);
  }
  CHECK_THROWS_AS(File::open(std::filesystem::temp_directory_path()), Error);
  const auto path = std::filesystem::temp_directory_path() /
                    ("vireo_test_empty_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(path).close();
  try {
    File::open(path);
    FAIL("opened an empty file");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
  }
  std::filesystem::remove(path);
}

TEST_CASE("the real SmolLM2 model file", "[cpu][gguf]") {
  const auto path = test::require_model();
  const File f = File::open(path);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.tensors().size() == 272);
  CHECK(f.get("general.architecture").as_string() == "llama");
  CHECK(f.get("llama.block_count").as_uint() == 30);
  CHECK(f.get("llama.embedding_length").as_uint() == 576);
  CHECK(f.get("tokenizer.ggml.model").as_string() == "gpt2");
  CHECK(f.get("tokenizer.ggml.tokens").as_array().size() == 49152);
  CHECK(f.get("tokenizer.ggml.tokens").array_size() == 49152);
  CHECK(f.get("tokenizer.ggml.token_type").as_int_array().size() == 49152);
  CHECK(f.get("tokenizer.ggml.tokens").array_type() == ValueType::String);
  const auto& emb = f.tensor("token_embd.weight");
  CHECK(emb.type == TensorType::Q8_0);
  CHECK(emb.shape == std::vector<std::uint64_t>{576, 49152});
  CHECK(emb.size_bytes == 576 / 32 * 34 * 49152ull);
  CHECK(f.tensor("blk.0.attn_q.weight").type == TensorType::Q4_1);
  CHECK(f.tensor("output_norm.weight").type == TensorType::F32);
  std::uint64_t total = 0;
  for (const auto& t : f.tensors()) total += t.size_bytes;
  CHECK(total <= f.file_size());
  CHECK(total > f.file_size() * 9 / 10);  // the tensors are nearly all of the file
}
