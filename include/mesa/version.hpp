#pragma once
// The library's version, reported by the version rule and by the gateway.

namespace mesa {

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;
inline constexpr char version_string[] = "0.1.0";

}  // namespace mesa
