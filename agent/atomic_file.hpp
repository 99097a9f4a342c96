#pragma once
// The one way the agent writes an output file (CSRs, exported certificates):
// readers see the old content or the new, never half a file, and a symlink at
// the target or a planted temporary name is never written through.
#include <sys/types.h>

#include <filesystem>
#include <string_view>

namespace qscd::agent {

// Writes `bytes` to a mkstemp file in `path`'s folder, fsyncs it, gives it
// `mode`, renames it over `path` (a symlink there is replaced, not followed)
// and fsyncs the folder. Throws UsageError(option, ...) naming the path and
// the reason; the temporary file is removed on failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes, std::string_view option,
                           mode_t mode = 0644);

}  // namespace qscd::agent
