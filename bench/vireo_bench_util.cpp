// Small helpers the vireo-bench subcommands share (see vireo_bench.hpp).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "vireo_bench.hpp"

namespace vireo::bench {

std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += ch;
    } else if (ch == '\n') {
      o += "\\n";
    } else if (u < 0x20) {
      o += fmt::format("\\u{:04x}", u);
    } else {
      o += ch;
    }
  }
  return o + "\"";
}

std::string first_line(const char* cmd) {
  std::string out;
  if (FILE* p = popen(cmd, "r")) {
    char buf[512];
    if (std::fgets(buf, sizeof buf, p)) out = buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace vireo::bench
