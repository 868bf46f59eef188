#pragma once
// The gateway's configuration read from a map instead of the environment, for
// tests of examples/gateway/config.hpp (on the include path as "config.hpp").
#include <map>
#include <optional>
#include <string>

#include "config.hpp"

namespace mesa::test {

using env_map = std::map<std::string, std::string>;

/// parse_config() over `env` as the whole environment.
inline gateway::parsed_config parse_gateway_config(env_map const& env) {
    return gateway::parse_config([&](char const* name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    });
}

/// True when one of the configuration errors mentions `text`.
inline bool mentions(gateway::parsed_config const& p, std::string const& text) {
    for (auto const& e : p.errors)
        if (e.find(text) != std::string::npos) return true;
    return false;
}

}  // namespace mesa::test
