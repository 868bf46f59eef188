#pragma once
// Lines collected from a component's log (e.g. broker::redis::options::on_log).
#include <string>
#include <vector>

namespace mesa::test {

/// True when a line contains `part`.
inline bool logged(std::vector<std::string> const& log, std::string const& part) {
    for (auto const& line : log)
        if (line.find(part) != std::string::npos) return true;
    return false;
}

/// The lines, one per line, for a failure message.
inline std::string joined(std::vector<std::string> const& log) {
    std::string out;
    for (auto const& line : log) out += line + "\n";
    return out;
}

}  // namespace mesa::test
