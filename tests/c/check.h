/* A tiny check harness for the C API tests: CHECK(cond) and CHECK_STATUS(call, status)
 * record a failure with its line (and the last error message) and go on; main() returns
 * check_summary() so CTest sees the failure count. */
#ifndef VIREO_TEST_CHECK_H
#define VIREO_TEST_CHECK_H
#include <stdio.h>
#include <string.h>

#include "vireo/vireo.h"

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    ++check_count;                                                                        \
    if (!(cond)) {                                                                        \
      ++check_failures;                                                                   \
      fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, __LINE__, #cond, \
              vireo_last_error());                                                        \
    }                                                                                     \
  } while (0)

/* Whether the thread's last error names the function called in `call_text` ("fn(...)"):
 * a failed call must leave its own message, not an earlier one. */
static int check_error_names(const char* call_text) {
  const char* paren = strchr(call_text, '(');
  size_t n = paren ? (size_t)(paren - call_text) : strlen(call_text);
  const char* msg = vireo_last_error();
  return strncmp(msg, call_text, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' && msg[n + 2] != '\0';
}

/* The call must return `want`; a failed call must also leave a message naming it. */
#define CHECK_STATUS(call, want)                                                          \
  do {                                                                                    \
    vireo_status got_ = (call);                                                           \
    ++check_count;                                                                        \
    if (got_ != (want)) {                                                                 \
      ++check_failures;                                                                   \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", __FILE__, __LINE__, #call, \
              vireo_status_string(got_), vireo_status_string(want), vireo_last_error()); \
    } else if ((want) != VIREO_STATUS_OK && !check_error_names(#call)) {                  \
      ++check_failures;                                                                   \
      fprintf(stderr, "%s:%d: %s failed without its own message (last error: %s)\n", __FILE__, __LINE__, \
              #call, vireo_last_error());                                                 \
    }                                                                                     \
  } while (0)

static int check_summary(const char* name) {
  printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
  return check_failures ? 1 : 0;
}

#endif
