#!/usr/bin/env bash
# Windows without Windows: cross-compile libvireo, vireo-tests and the C API's test programs
# with mingw-w64 (GCC's "-posix" thread model, cmake/toolchains/mingw-w64-x86_64.cmake; CPU
# only, statically linked so no MinGW DLL is needed), then run them under wine in a throw-away
# prefix. The golden tests need models/ (SmolLM2 and Gemma 3 270M, fetched here if missing).
# Installs what is missing (Debian/Ubuntu). Prints the duration of each phase and of the whole
# script.
#
# Left out under wine, each for a reason:
#   [cuda]   no CUDA on this target (the Windows build is CPU only).
#   [posix]  POSIX file-system features Windows lacks or gates: the symbolic-link test
#            (creating one needs an administrator or developer mode; wine does not implement it).
#   "to_json output is accepted by Python's json module": runs python3 through the shell,
#            which a Windows process does not have (it would only report itself skipped).
#   tests/c/test_capi_basics.c: C11 <threads.h>, which mingw-w64's C library does not have.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
jobs=${VIREO_JOBS:-2}
build=${VIREO_MINGW_BUILD:-build-mingw}
phase() { echo "== mingw-wine: $1: $((SECONDS - t)) s"; t=$SECONDS; }
t=$SECONDS

need=()
command -v x86_64-w64-mingw32-g++-posix >/dev/null || need+=(g++-mingw-w64-x86-64-posix)
command -v wine >/dev/null || need+=(wine)
[ -x /usr/lib/wine/wine64 ] || need+=(wine64)
command -v cmake >/dev/null || need+=(cmake)
[ -f /usr/include/fmt/format.h ] || need+=(libfmt-dev)
[ -f /usr/include/catch2/catch.hpp ] || need+=(catch2)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "mingw-wine: installing ${need[*]}"
  $sudo apt-get update -qq
  # No recommends: wine's pull in fonts, GStreamer and X libraries a console program never uses.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
scripts/fetch-model.sh
scripts/fetch-gemma.sh
phase "install and models"

cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/mingw-w64-x86_64.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DVIREO_CUDA=OFF -DVIREO_BUILD_BENCH=OFF -DVIREO_BUILD_EXAMPLES=OFF >/dev/null
c_tests=(vireo-c-test_capi_model vireo-c-test_capi_serve)
cmake --build "$build" -j"$jobs" --target vireo-tests "${c_tests[@]}"
exe="$build/tests/vireo-tests.exe"
# Statically linked: the only DLLs it imports are Windows' own.
imports=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u | tr '\n' ' ')
echo "mingw-wine: $exe imports: $imports"
for dll in $imports; do
  case "$dll" in libstdc++*|libgcc*|libwinpthread*) echo "mingw-wine: $exe needs $dll (not static)" >&2; exit 1 ;; esac
done
phase "cross build"

# A fresh prefix (nothing of the user's ~/.wine), no Mono / Gecko installers, no debug noise.
# Console programs need no display.
prefix_root=$(mktemp -d)
export WINEPREFIX="$prefix_root/wine" WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree=;mshtml="
cleanup() { wineserver -k 2>/dev/null || true; rm -rf "$prefix_root"; }
trap cleanup EXIT
if ! wineboot -i >"$prefix_root/wineboot.log" 2>&1; then
  cat "$prefix_root/wineboot.log" >&2
  echo "mingw-wine: wineboot -i failed" >&2
  exit 1
fi
phase "wine prefix (wineboot -i)"

spec='~[cuda]~[posix]~"to_json output is accepted by Python'"'"'s json module"'
echo "mingw-wine: vireo-tests.exe $spec ($(wine "$exe" "$spec" --list-test-names-only | grep -c .) test cases)"
timeout 1800 wine "$exe" "$spec" --durations no
for c in "${c_tests[@]}"; do
  echo "mingw-wine: $c.exe"
  timeout 600 wine "$build/tests/c/$c.exe" models/SmolLM2-135M-Instruct.Q4_1.gguf
done
phase "tests under wine"
echo "== mingw-wine: total $((SECONDS - start)) s"
