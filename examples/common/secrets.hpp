#pragma once
// Secrets kept off the command line, for the gateway and the tools: a value
// from the environment (NAME) or from a file (NAME_FILE, as container
// orchestrators mount secrets), and a Redis password kept apart from the URI.
//
//   auto uri = tools::secret("REDIS_URI", given_on_command_line);   // throws std::invalid_argument
//   if (auto password = tools::secret("REDIS_PASSWORD")) uri = tools::with_redis_password(*uri, *password);
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>

#include <mesa/broker/detail/redis_uri.hpp>

namespace tools {

/// The content of `path` without its final line break; throws std::invalid_argument
/// (naming `variable`) when it cannot be read or is empty.
inline std::string read_secret_file(std::string const& variable, std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument(variable + "=\"" + path + "\": cannot read the file");
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
    if (content.empty()) throw std::invalid_argument(variable + "=\"" + path + "\": the file is empty");
    return content;
}

/// `given` (the command line) if set, else $NAME, else the file named by $NAME_FILE.
/// Throws std::invalid_argument when NAME and NAME_FILE are both set or the file is unusable.
inline std::optional<std::string> secret(std::string const& name, std::optional<std::string> given = std::nullopt) {
    if (given) return given;
    char const* value = std::getenv(name.c_str());
    char const* file = std::getenv((name + "_FILE").c_str());
    if (value && file) throw std::invalid_argument(name + "_FILE: set with " + name + " (one or the other)");
    if (value) return std::string(value);
    if (file) return read_secret_file(name + "_FILE", file);
    return std::nullopt;
}

/// `uri` with `password` added (percent-encoded), so the password can be kept
/// apart from the address (REDIS_PASSWORD). Throws std::invalid_argument when
/// `uri` is invalid or already holds a password.
inline std::string with_redis_password(std::string const& uri, std::string const& password) {
    auto const endpoint = mesa::broker::detail::parse_redis_uri(uri);
    if (!endpoint.password.empty()) throw std::invalid_argument("the Redis URI already holds a password");
    std::string encoded;
    for (unsigned char ch : password) {
        if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            encoded += static_cast<char>(ch);
        } else {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", ch);
            encoded += hex;
        }
    }
    if (endpoint.is_unix()) {
        std::string out = uri.rfind("unix://", 0) == 0 ? uri : "unix://" + uri;
        return out + (out.find('?') == std::string::npos ? "?" : "&") + "password=" + encoded;
    }
    auto const scheme_end = uri.find("://") + 3;
    auto const at = uri.find('@', scheme_end);
    auto const slash = uri.find('/', scheme_end);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
        std::string user = uri.substr(scheme_end, at - scheme_end);
        if (!user.empty() && user.back() == ':') user.pop_back();
        return uri.substr(0, scheme_end) + user + ":" + encoded + uri.substr(at);
    }
    return uri.substr(0, scheme_end) + ":" + encoded + "@" + uri.substr(scheme_end);
}

/// The Redis URI of a tool: --redis (or $REDIS_URI, or the file of
/// $REDIS_URI_FILE), with $REDIS_PASSWORD (or the file of $REDIS_PASSWORD_FILE)
/// added. nullopt when none is given; throws std::invalid_argument on a bad one.
inline std::optional<std::string> redis_uri(std::optional<std::string> given) {
    auto uri = secret("REDIS_URI", std::move(given));
    auto password = secret("REDIS_PASSWORD");
    if (uri && password) return with_redis_password(*uri, *password);
    return uri;
}

}  // namespace tools
