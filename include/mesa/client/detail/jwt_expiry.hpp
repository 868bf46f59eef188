#pragma once
// The `exp` claim of a JSON Web Token (RFC 7519 §4.1.4), read without
// verifying it: the client only learns when to refresh its own token; the
// server verifies. Anything that is not a compact JWS with a numeric `exp`
// gives nullopt.
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mesa::detail {

inline std::optional<std::chrono::system_clock::time_point> jwt_expiry(std::string_view token) {
    auto const first = token.find('.');
    auto const second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    std::string payload;
    std::uint32_t bits = 0;
    int count = 0;
    for (char c : token.substr(first + 1, second - first - 1)) {
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        count += 6;
        if (count >= 8) {
            count -= 8;
            payload.push_back(static_cast<char>((bits >> count) & 0xFF));
        }
    }
    boost::system::error_code ec;
    auto v = boost::json::parse(payload, ec);
    if (ec || !v.is_object()) return std::nullopt;
    auto const* exp = v.get_object().if_contains("exp");
    if (!exp || !exp->is_number()) return std::nullopt;
    auto const seconds = exp->to_number<double>(ec);
    if (ec || !(seconds > 0) || seconds > 1e11) return std::nullopt;
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace mesa::detail
