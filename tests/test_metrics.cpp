// Tests for vireo::Metrics and the roofline helpers: percentiles against values worked out by
// hand, a scripted request timeline with known latencies, JSON checked by a small strict
// parser written here (and by Python's json module in a [slow] test), and every line of the
// Prometheus text checked by a regular expression plus family/TYPE consistency.
#include <catch2/catch.hpp>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "vireo/error.hpp"
#include "vireo/metrics.hpp"

using vireo::Metrics;

namespace {

// ---- a minimal strict JSON parser (RFC 8259 grammar, no extensions) ------------------------
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;
  const Json& at(const std::string& k) const {
    auto it = obj.find(k);
    if (it == obj.end()) throw std::runtime_error("missing key " + k);
    return it->second;
  }
};

struct JsonParser {
  const std::string& s;
  std::size_t i = 0;
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("json: ") + what + " at offset " + std::to_string(i));
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  }
  void expect(char c) {
    if (i >= s.size() || s[i] != c) fail("unexpected character");
    ++i;
  }
  bool lit(const char* w) {
    const std::string word(w);
    if (s.compare(i, word.size(), word) != 0) return false;
    i += word.size();
    return true;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail("unterminated string");
      const char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) fail("bad escape");
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i + 4 > s.size()) fail("short \\u escape");
          const unsigned v = std::stoul(s.substr(i, 4), nullptr, 16);
          if (v >= 0x80) fail("test parser handles only ASCII \\u escapes");
          out += char(v);
          i += 4;
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  Json value() {
    ws();
    Json j;
    if (i >= s.size()) fail("unexpected end");
    if (s[i] == '{') {
      j.kind = Json::Object;
      ++i;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
        return j;
      }
      while (true) {
        ws();
        std::string k = string();
        if (j.obj.count(k)) fail("duplicate key");
        ws();
        expect(':');
        j.obj[k] = value();
        ws();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        expect('}');
        return j;
      }
    }
    if (s[i] == '[') {
      j.kind = Json::Array;
      ++i;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
        return j;
      }
      while (true) {
        j.arr.push_back(value());
        ws();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        expect(']');
        return j;
      }
    }
    if (s[i] == '"') {
      j.kind = Json::String;
      j.str = string();
      return j;
    }
    if (lit("null")) return j;
    if (lit("true")) {
      j.kind = Json::Bool;
      j.b = true;
      return j;
    }
    if (lit("false")) {
      j.kind = Json::Bool;
      return j;
    }
    // number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    static const std::regex num(R"(^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
    std::smatch m;
    const std::string rest = s.substr(i, 64);
    if (!std::regex_search(rest, m, num) || m.length(0) == 0) fail("bad value");
    j.kind = Json::Number;
    j.num = std::stod(m.str(0));
    i += std::size_t(m.length(0));
    return j;
  }
  Json document() {
    Json j = value();
    ws();
    if (i != s.size()) fail("trailing characters");
    return j;
  }
};

Json parse_json(const std::string& s) { return JsonParser{s}.document(); }

Metrics::TimePoint at_ms(double ms) {
  return Metrics::TimePoint{} + std::chrono::duration_cast<Metrics::Clock::duration>(
                                    std::chrono::duration<double, std::milli>(ms));
}

// The scripted timeline of the lifecycle test (times in ms):
//   A: start 0 (10 prompt tokens), first token 100, token 150, token 250, finish 300
//   B: start 50 (20 prompt tokens), token 250 (its first), token 260, finish 400
//   C: start 380 (5 prompt tokens), still running
// TTFT {0.1, 0.2}; ITL {0.05, 0.1, 0.01}; E2E {0.3, 0.35}; 5 output tokens; span 0.4 s.
Metrics scripted() {
  Metrics m;
  m.start(1, 10, at_ms(0));
  m.start(2, 20, at_ms(50));
  m.first_token(1, at_ms(100));
  m.token(1, at_ms(150));
  m.token(1, at_ms(250));
  m.token(2, at_ms(250));
  m.token(2, at_ms(260));
  m.finish(1, at_ms(300));
  m.start(3, 5, at_ms(380));
  m.finish(2, at_ms(400));
  m.record_cache(30, 40);
  m.record_cache(0, 10);
  return m;
}

}  // namespace

TEST_CASE("percentiles interpolate linearly between closest ranks", "[cpu][metrics]") {
  // 1..10: h = 9q. p50: h = 4.5 -> 5.5; p95: h = 8.55 -> 9.55; p99: h = 8.91 -> 9.91.
  auto p = vireo::compute_percentiles({10, 3, 1, 4, 2, 9, 6, 5, 8, 7});
  CHECK(p.count == 10);
  CHECK(p.p50 == Approx(5.5));
  CHECK(p.p95 == Approx(9.55));
  CHECK(p.p99 == Approx(9.91));
  CHECK(p.mean == Approx(5.5));
  CHECK(p.max == 10);
  CHECK(p.sum == Approx(55));
  // {0.1, 0.2, 0.3}: h = 2q. p50 = 0.2; p95: h = 1.9 -> 0.29; p99: h = 1.98 -> 0.298.
  p = vireo::compute_percentiles({0.3, 0.1, 0.2});
  CHECK(p.p50 == Approx(0.2));
  CHECK(p.p95 == Approx(0.29));
  CHECK(p.p99 == Approx(0.298));
  p = vireo::compute_percentiles({4.0});
  CHECK(p.p50 == 4.0);
  CHECK(p.p99 == 4.0);
  p = vireo::compute_percentiles({});
  CHECK(p.count == 0);
  CHECK(p.p50 == 0.0);
  CHECK(vireo::quantile_sorted({1, 2, 3, 4}, 0.0) == 1.0);
  CHECK(vireo::quantile_sorted({1, 2, 3, 4}, 1.0) == 4.0);
  CHECK(vireo::quantile_sorted({1, 2, 3, 4}, 1.0 / 3.0) == Approx(2.0));
  CHECK_THROWS_AS(vireo::quantile_sorted({}, 0.5), vireo::Error);
  CHECK_THROWS_AS(vireo::quantile_sorted({1.0}, 1.5), vireo::Error);
}

TEST_CASE("request lifecycle gives the scripted latencies and rates", "[cpu][metrics]") {
  const Metrics m = scripted();
  const auto s = m.summary();
  CHECK(s.requests_finished == 2);
  CHECK(s.requests_running == 1);
  CHECK(s.prompt_tokens == 35);
  CHECK(s.output_tokens == 5);
  CHECK(s.duration_s == Approx(0.4));
  CHECK(s.requests_per_s == Approx(5.0));
  CHECK(s.output_tokens_per_s == Approx(12.5));
  CHECK(s.cache_hit_tokens == 30);
  CHECK(s.cache_query_tokens == 50);
  CHECK(s.cache_hit_rate == Approx(0.6));
  CHECK(s.ttft.count == 2);
  CHECK(s.ttft.p50 == Approx(0.15));
  CHECK(s.ttft.max == Approx(0.2));
  CHECK(s.itl.count == 3);
  CHECK(s.itl.p50 == Approx(0.05));
  CHECK(s.itl.p95 == Approx(0.095));  // sorted {0.01, 0.05, 0.1}, h = 1.9
  CHECK(s.itl.mean == Approx(0.16 / 3));
  CHECK(s.e2e.p50 == Approx(0.325));
  CHECK(s.e2e.p99 == Approx(0.3 + 0.99 * 0.05));

  // The overloads without a time use steady_clock::now().
  Metrics live;
  live.start(7, 3);
  live.first_token(7);
  live.token(7);
  live.finish(7);
  const auto ls = live.summary();
  CHECK(ls.requests_finished == 1);
  CHECK(ls.output_tokens == 2);
  CHECK(ls.e2e.max >= ls.ttft.max);
  CHECK(ls.ttft.max >= 0.0);

  Metrics r = scripted();
  r.reset();
  CHECK(r.summary().requests_finished == 0);
  CHECK(r.summary().output_tokens == 0);
  CHECK(r.summary().duration_s == 0.0);
  r.start(1, 1, at_ms(0));  // id 1 is free again after reset
}

TEST_CASE("metrics reject inconsistent events and keep their state", "[cpu][metrics]") {
  Metrics m = scripted();
  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const vireo::Error& e) {
      return e.code();
    }
    return vireo::ErrorCode::Internal;
  };
  using vireo::ErrorCode;
  CHECK(code_of([&] { m.start(3, 1, at_ms(500)); }) == ErrorCode::InvalidArgument);  // running
  CHECK(code_of([&] { m.token(99, at_ms(500)); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { m.finish(1, at_ms(500)); }) == ErrorCode::InvalidArgument);  // finished
  CHECK(code_of([&] { m.token(3, at_ms(100)); }) == ErrorCode::InvalidArgument);  // before start
  m.first_token(3, at_ms(420));
  CHECK(code_of([&] { m.first_token(3, at_ms(430)); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { m.record_cache(5, 4); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { m.set_label("9bad", "x"); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { m.set_label("__reserved", "x"); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { m.set_label("quantile", "x"); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { (void)m.to_prometheus("bad-prefix"); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { (void)m.to_prometheus(""); }) == ErrorCode::InvalidArgument);
  const auto s = m.summary();
  CHECK(s.requests_finished == 2);
  CHECK(s.requests_running == 1);
  CHECK(s.output_tokens == 6);
  CHECK(s.ttft.count == 3);
  CHECK(s.cache_query_tokens == 50);
}

TEST_CASE("to_json is valid JSON with the summary's values", "[cpu][metrics]") {
  Metrics m = scripted();
  m.set_label("model", "smol \"135M\"\\q4\n\ttab\x01");
  const std::string text = m.to_json();
  INFO(text);
  const Json j = parse_json(text);
  REQUIRE(j.kind == Json::Object);
  CHECK(j.at("requests").at("finished").num == 2);
  CHECK(j.at("requests").at("running").num == 1);
  CHECK(j.at("tokens").at("prompt").num == 35);
  CHECK(j.at("tokens").at("output").num == 5);
  CHECK(j.at("duration_s").num == Approx(0.4));
  CHECK(j.at("throughput").at("output_tokens_per_s").num == Approx(12.5));
  CHECK(j.at("cache").at("hit_rate").num == Approx(0.6));
  const Json& itl = j.at("latency_s").at("itl");
  CHECK(itl.at("count").num == 3);
  CHECK(itl.at("p95").num == Approx(0.095));
  CHECK(j.at("latency_s").at("ttft").at("p50").num == Approx(0.15));
  CHECK(j.at("latency_s").at("e2e").at("max").num == Approx(0.35));
  CHECK(j.at("labels").at("model").str == "smol \"135M\"\\q4\n\ttab\x01");
  CHECK(text.find("\\u0001") != std::string::npos);

  // An empty Metrics exports null statistics, still valid JSON.
  const Json e = parse_json(Metrics{}.to_json());
  CHECK(e.at("latency_s").at("ttft").at("p50").kind == Json::Null);
  CHECK(e.at("latency_s").at("ttft").at("count").num == 0);
  // The test parser itself rejects what it must.
  CHECK_THROWS(parse_json("{\"a\":1,}"));
  CHECK_THROWS(parse_json("{\"a\":nan}"));
  CHECK_THROWS(parse_json("{\"a\":\"x\ny\"}"));
}

TEST_CASE("to_prometheus is well-formed text exposition", "[cpu][metrics]") {
  Metrics m = scripted();
  m.set_label("model", "smol \"135M\"\\q4\nx");
  m.set_label("device", "cpu");
  const std::string text = m.to_prometheus("vireo_test");
  INFO(text);
  static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
  static const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary)$)");
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")"
      R"((?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? )"
      R"((NaN|[+-]Inf|[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)$)");
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::istringstream in(text);
  std::string line, family, family_type;
  std::set<std::string> families;
  std::map<std::string, double> values;  // "name{labels}" -> value
  int samples = 0;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    std::smatch mt;
    if (std::regex_match(line, mt, help)) {
      family = mt[1];
      continue;
    }
    if (std::regex_match(line, mt, type)) {
      REQUIRE(mt[1] == family);  // HELP then TYPE for the same family
      REQUIRE(families.insert(family).second);  // each family once
      family_type = mt[2];
      CHECK((family_type != "counter" || family.size() > 6));
      if (family_type == "counter") CHECK(family.substr(family.size() - 6) == "_total");
      continue;
    }
    REQUIRE(std::regex_match(line, mt, sample));
    const std::string name = mt[1];
    REQUIRE(name.rfind("vireo_test_", 0) == 0);
    if (family_type == "summary")
      CHECK((name == family || name == family + "_sum" || name == family + "_count"));
    else
      CHECK(name == family);
    const std::string labels = mt[2];
    CHECK(labels.find(R"(model="smol \"135M\"\\q4\nx")") != std::string::npos);
    CHECK(labels.find(R"(device="cpu")") != std::string::npos);
    const std::string v = mt[3];
    values[name + (labels.find("quantile") != std::string::npos
                       ? labels.substr(labels.find("quantile"))
                       : std::string())] =
        v == "NaN" ? std::nan("") : std::stod(v);
    ++samples;
  }
  CHECK(families.size() == 12);
  CHECK(samples == 9 + 3 * 5);
  CHECK(values["vireo_test_requests_total"] == 2);
  CHECK(values["vireo_test_output_tokens_total"] == 5);
  CHECK(values["vireo_test_prompt_tokens_total"] == 35);
  CHECK(values["vireo_test_prefix_cache_hit_rate"] == Approx(0.6));
  CHECK(values["vireo_test_requests_running"] == 1);
  CHECK(values["vireo_test_time_to_first_token_seconds" + std::string("quantile=\"0.5\"}")] ==
        Approx(0.15));
  CHECK(values["vireo_test_inter_token_latency_seconds" + std::string("quantile=\"0.95\"}")] ==
        Approx(0.095));
  CHECK(values["vireo_test_inter_token_latency_seconds_count"] == 3);
  CHECK(values["vireo_test_e2e_request_latency_seconds_sum"] == Approx(0.65));

  // No labels at all and no samples: quantiles are NaN, lines still well-formed.
  std::istringstream empty(Metrics{}.to_prometheus());
  int nan_lines = 0;
  while (std::getline(empty, line)) {
    INFO("line: " << line);
    if (line.rfind("# ", 0) == 0) {
      CHECK((std::regex_match(line, help) || std::regex_match(line, type)));
      continue;
    }
    std::smatch mt;
    REQUIRE(std::regex_match(line, mt, sample));
    CHECK(std::string(mt[1]).rfind("vireo_", 0) == 0);
    if (mt[3] == "NaN") ++nan_lines;
  }
  CHECK(nan_lines == 9);
}

TEST_CASE("roofline reports the fraction of the hardware floor", "[cpu][metrics]") {
  // Decode: 1 GB per step at 2 TB/s is a 0.5 ms floor; 1 ms measured is 50% of it.
  const auto d = vireo::decode_roofline(1e9, 2e12, 1e-3);
  CHECK(d.floor_s == Approx(5e-4));
  CHECK(d.achieved_rate == Approx(1e12));
  CHECK(d.fraction == Approx(0.5));
  // Prefill: 2 * 135e6 params * 2048 tokens at 500 TFLOP/s, measured 2 ms.
  const double flops = 2.0 * 135e6 * 2048;
  const auto p = vireo::prefill_roofline(flops, 5e14, 2e-3);
  CHECK(p.floor_s == Approx(flops / 5e14));
  CHECK(p.fraction == Approx(flops / 5e14 / 2e-3));
  const Json j = parse_json(d.to_json());
  CHECK(j.at("fraction").num == Approx(0.5));
  CHECK(j.at("floor_s").num == Approx(5e-4));
  CHECK_THROWS_AS(vireo::decode_roofline(0, 1, 1), vireo::Error);
  CHECK_THROWS_AS(vireo::decode_roofline(1, -1, 1), vireo::Error);
  CHECK_THROWS_AS(vireo::prefill_roofline(1, 1, std::nan("")), vireo::Error);
  CHECK_THROWS_AS(vireo::prefill_roofline(1, INFINITY, 1), vireo::Error);
}

TEST_CASE("to_json output is accepted by Python's json module", "[slow][metrics]") {
  // Needs python3 on PATH (standard library only).
  if (std::system("python3 -c pass > /dev/null 2>&1") != 0) {
    WARN("python3 not found: skipping the Python JSON check");
    return;
  }
  Metrics m = scripted();
  const std::string label = "smol \"135M\"\\q4\n\ttab\x01 \xc3\xa9";
  m.set_label("model", label);
  const std::string path = "/tmp/vireo_metrics_test_" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream f(path);
    f << m.to_json();
  }
  // Python prints finished count, itl p95 and the label's UTF-8 bytes in hex.
  const std::string cmd =
      "python3 -c \"import json,sys; d=json.load(open(sys.argv[1], encoding='utf-8')); "
      "print(d['requests']['finished'], d['latency_s']['itl']['p95'], "
      "d['labels']['model'].encode('utf-8').hex())\" " + path;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  REQUIRE(pipe);
  char buf[512] = {};
  const std::size_t got = fread(buf, 1, sizeof(buf) - 1, pipe.get());
  std::remove(path.c_str());
  std::istringstream out(std::string(buf, got));
  int finished = 0;
  double p95 = 0;
  std::string hex;
  out >> finished >> p95 >> hex;
  CHECK(finished == 2);
  CHECK(p95 == Approx(0.095));
  std::string want;
  for (unsigned char c : label) want += "0123456789abcdef"[c >> 4], want += "0123456789abcdef"[c & 15];
  CHECK(hex == want);
}
