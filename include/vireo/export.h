/* Export macros for the shared library (C and C++).
 *
 * VIREO_API marks a C entry point (vireo.h) as part of the library's interface. A shared
 * build (VIREO_BUILD_SHARED) defines VIREO_SHARED for everyone and VIREO_BUILDING while the
 * library itself compiles: on Windows that selects dllexport / dllimport, elsewhere the
 * symbol gets default visibility, so it stays visible when the library is compiled with
 * -fvisibility=hidden. A static build leaves VIREO_API empty on Windows.
 *
 * VIREO_CXX_API_BEGIN / VIREO_CXX_API_END wrap the declarations of a public C++ header: every
 * class and function declared between them keeps default visibility under
 * -fvisibility=hidden (GCC / Clang "visibility push" pragma; MSVC would need
 * __declspec(dllexport) per class, which this pair does not provide). */
#ifndef VIREO_EXPORT_H
#define VIREO_EXPORT_H

#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(VIREO_SHARED) && defined(VIREO_BUILDING)
#    define VIREO_API __declspec(dllexport)
#  elif defined(VIREO_SHARED)
#    define VIREO_API __declspec(dllimport)
#  else
#    define VIREO_API
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define VIREO_API __attribute__((visibility("default")))
#else
#  define VIREO_API
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#  define VIREO_CXX_API_BEGIN _Pragma("GCC visibility push(default)")
#  define VIREO_CXX_API_END _Pragma("GCC visibility pop")
#else
#  define VIREO_CXX_API_BEGIN
#  define VIREO_CXX_API_END
#endif

#endif /* VIREO_EXPORT_H */
