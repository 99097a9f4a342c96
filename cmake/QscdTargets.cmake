# Per-target build settings (never global flags), after spdlog's cmake/utils.cmake.
include_guard(GLOBAL)

if(NOT CMAKE_CXX_STANDARD)
  set(CMAKE_CXX_STANDARD 20)
  set(CMAKE_CXX_STANDARD_REQUIRED ON)
  set(CMAKE_CXX_EXTENSIONS OFF)
endif()
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

find_package(PkgConfig REQUIRED)

# Warnings for our own code; errors only in our own test and CI builds (scripts/lib.sh turns
# QSCD_WERROR on): a user's or a distribution's build must not fail on a new compiler's warning.
option(QSCD_WERROR "Treat warnings in qscd-agent's own code as errors" OFF)

function(qscd_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
    -Wno-sign-conversion -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
    -Wnull-dereference -Wimplicit-fallthrough)
  if(QSCD_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# ASan + UBSan when QSCD_SANITIZE is on; QSCD_FUZZ (clang only) adds libFuzzer's coverage
# instrumentation to every target, so the fuzz targets in tests/fuzz see our code's branches.
function(qscd_target_sanitizers target)
  if(QSCD_FUZZ)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
  if(QSCD_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_compile_definitions(${target} PRIVATE QSCD_SANITIZE=1)
    # GCC 12 to 14 warn falsely in libstdc++'s std::regex when ASan instruments it (GCC bug 105616).
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# Debian's hardening (dpkg-buildflags with hardening=+all: stack protector, fortify, PIE, full
# RELRO, bind now; stack clash protection and CET where the compiler has them, as newer dpkg
# adds) on every target of ours, so that a plain build
# and the .deb packed from it pass hardening-check. A distribution's own flags come on top.
include(CheckCXXCompilerFlag)
include(CheckCXXSourceCompiles)
include(CheckPIESupported)
check_pie_supported(LANGUAGES CXX)
check_cxx_compiler_flag(-fcf-protection QSCD_HAVE_CF_PROTECTION)
check_cxx_compiler_flag(-fstack-clash-protection QSCD_HAVE_STACK_CLASH_PROTECTION)
# A toolchain or flags that fortify already (Debian's CPPFLAGS, Ubuntu's GCC) keep their level.
set(CMAKE_REQUIRED_FLAGS -O2)
check_cxx_source_compiles("#include <cstring>
#ifndef _FORTIFY_SOURCE
#error not fortified
#endif
int main() { return 0; }" QSCD_FORTIFIED_BY_FLAGS)
unset(CMAKE_REQUIRED_FLAGS)

function(qscd_target_hardening target)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${target} PRIVATE -fstack-protector-strong)
  if(QSCD_HAVE_CF_PROTECTION)
    target_compile_options(${target} PRIVATE -fcf-protection)
  endif()
  if(QSCD_HAVE_STACK_CLASH_PROTECTION)
    target_compile_options(${target} PRIVATE -fstack-clash-protection)
  endif()
  # Fortify needs an optimised build, and gets in the way of ASan's own checks.
  if(NOT QSCD_FORTIFIED_BY_FLAGS AND NOT QSCD_SANITIZE)
    target_compile_definitions(${target} PRIVATE
      $<$<CONFIG:Release,RelWithDebInfo,MinSizeRel>:_FORTIFY_SOURCE=2>)
  endif()
  target_link_options(${target} PRIVATE LINKER:-z,relro LINKER:-z,now)
endfunction()

function(qscd_target_defaults target)
  qscd_target_warnings(${target})
  qscd_target_sanitizers(${target})
  qscd_target_hardening(${target})
endfunction()

# qscd_add_doctest(NAME name LABELS l1 [l2] SOURCES ... LIBS ...)
# One test executable with the shared doctest main, registered with CTest under its labels.
function(qscd_add_doctest)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "LABELS;SOURCES;LIBS;ENVIRONMENT;FIXTURES_REQUIRED" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE qscd_doctest_main ${T_LIBS})
  qscd_target_defaults(${T_NAME})
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "QSCD_AGENT_BIN=$<TARGET_FILE:qscd-agent>;QSCD_CERTCENTRAL_SIM=$<TARGET_FILE:certcentral-sim>;QSCD_TEST_SOURCE_DIR=${PROJECT_SOURCE_DIR};QSCD_TEST_BINARY_DIR=${PROJECT_BINARY_DIR};${T_ENVIRONMENT}")
  if(T_FIXTURES_REQUIRED)
    set_tests_properties(${T_NAME} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES_REQUIRED}")
  endif()
endfunction()
