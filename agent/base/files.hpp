#pragma once
// Files the user names: the one way the agent reads an input file (order bodies, CSRs) and
// writes an output file (CSRs, exported certificates). Writes are atomic: readers see the old
// content or the new, never half a file, and a symlink at the target or a planted temporary
// name is never written through.
#include <sys/types.h>

#include <filesystem>
#include <cstddef>
#include <string>
#include <string_view>

namespace qscd::agent {

// Writes `bytes` to a mkstemp file in `path`'s folder, fsyncs it, gives it
// `mode`, renames it over `path` (a symlink there is replaced, not followed)
// and fsyncs the folder. Throws UsageError(option, ...) naming the path and
// the reason; the temporary file is removed on failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes, std::string_view option,
                           mode_t mode = 0644);

// The whole of a small input file. Throws UsageError(option, ...) when it cannot be read or is
// larger than `max_bytes` (input files are order bodies and CSRs, a few KiB).
std::string read_input_file(const std::filesystem::path& path, std::string_view option,
                            std::size_t max_bytes = std::size_t{1} << 20U);

}  // namespace qscd::agent
