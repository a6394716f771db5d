/* vireo's version, the one source of it: the root CMakeLists.txt reads these three lines
 * for project(VERSION), the package version file and the shared library's SOVERSION
 * (the major number; 0 while the API is 0.x and may change between minor versions). */
#ifndef VIREO_VERSION_H
#define VIREO_VERSION_H

#define VIREO_VERSION_MAJOR 0
#define VIREO_VERSION_MINOR 1
#define VIREO_VERSION_PATCH 0

/* One integer for compile-time comparisons: 10000 * major + 100 * minor + patch. */
#define VIREO_VERSION (VIREO_VERSION_MAJOR * 10000 + VIREO_VERSION_MINOR * 100 + VIREO_VERSION_PATCH)

#endif /* VIREO_VERSION_H */
