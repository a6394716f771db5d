# vireo_host_headers(<target> <dir>/<header> [<definition>...]): an INTERFACE imported target that
# uses the build host's copy of a header-only-capable dependency, for a cross build whose
# sysroot lacks the package (Debian's mingw-w64 has no fmt or Catch2; their headers are the
# same for every target). Only <dir> (e.g. fmt/) is copied into the build tree and put on the
# include path: the host's whole include directory would put glibc's headers before the
# cross compiler's. <definition>s are added for every user (FMT_HEADER_ONLY=1 for fmt).
function(vireo_host_headers target header)
  string(REGEX REPLACE "/.*" "" dir ${header})
  find_path(VIREO_HOST_${dir}_PARENT ${header} NO_CMAKE_FIND_ROOT_PATH)
  if(NOT VIREO_HOST_${dir}_PARENT)
    message(FATAL_ERROR "vireo: ${target} not found, neither as a CMake package of the target nor as "
                        "host header ${header} (install libfmt-dev and catch2)")
  endif()
  set(staged ${CMAKE_BINARY_DIR}/host-headers)
  file(COPY ${VIREO_HOST_${dir}_PARENT}/${dir} DESTINATION ${staged})
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${staged}
                                             INTERFACE_COMPILE_DEFINITIONS "${ARGN}")
  message(STATUS "vireo: ${target} from the host's ${VIREO_HOST_${dir}_PARENT}/${dir} (header-only)")
endfunction()
