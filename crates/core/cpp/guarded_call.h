// The bridge's error convention, shared by its .cpp files: a fallible C function returns NULL on success, or a
// malloc'ed message that the Rust side releases with ck_c10d_free_error(). No C++ exception leaves the bridge.
#pragma once
#include <functional>

namespace ck_c10d {
// Runs f, turning any exception into a malloc'ed message (NULL on success).
char* guarded_call(const std::function<void()>& f) noexcept;
}  // namespace ck_c10d
