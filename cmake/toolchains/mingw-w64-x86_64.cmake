# Cross toolchain: Windows x86-64 with Debian's mingw-w64 compilers (the "-posix" thread model,
# which std::thread / std::mutex need; the "-win32" one lacks them in GCC 12).
#   cmake -S . -B build-mingw -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
# Executables link libgcc, libstdc++ and winpthread statically, so they run under wine (or on
# Windows) with no MinGW DLL beside them. scripts/ci/mingw-wine.sh builds and runs the tests.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(VIREO_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${VIREO_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${VIREO_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER ${VIREO_MINGW_TRIPLE}-windres)

# Libraries, headers and CMake packages come from the MinGW sysroot only, never from the build
# host's /usr (a host package's include dir would put glibc's headers before MinGW's).
set(CMAKE_FIND_ROOT_PATH /usr/${VIREO_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# 64-bit Windows only guarantees a 16-byte aligned stack and GCC cannot realign it in SEH
# functions, so an AVX register it spills with an aligned move (vmovaps) can fault (GCC bug
# 54412). The assembler turns every aligned vector move into its unaligned form, which costs
# nothing on aligned data.
set(CMAKE_C_FLAGS_INIT "-Wa,-muse-unaligned-vector-move")
set(CMAKE_CXX_FLAGS_INIT "-Wa,-muse-unaligned-vector-move")

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++")

# try_run and CTest start the Windows programs through wine when it is installed.
find_program(VIREO_WINE wine)
if(VIREO_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VIREO_WINE})
endif()
