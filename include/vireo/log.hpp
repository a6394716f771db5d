// Logging goes through one user-settable callback; the default writes to stderr.
// The library never prints anything else on its own.
#pragma once
#include <functional>
#include <string_view>
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

enum class LogLevel { Debug, Info, Warn, Error };
using LogCallback = std::function<void(LogLevel, std::string_view)>;

/// Replace the log sink (pass nullptr to silence vireo). Thread-safe. The sink is called with
/// no lock held, possibly from several threads at once; it may call set_log_callback and
/// set_log_level from inside itself (the call in progress finishes with the old sink), and
/// what it logs itself on that thread is dropped rather than fed back to it.
void set_log_callback(LogCallback cb);
/// Messages below this level are dropped (default: Info).
void set_log_level(LogLevel level);
/// Emit a message through the current sink.
void log(LogLevel level, std::string_view message);

}  // namespace vireo
VIREO_CXX_API_END
