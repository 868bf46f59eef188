#pragma once
// The form of a client's Sec-WebSocket-Key (RFC 6455 §4.2.1 item 5), shared
// by the handshakes of every socket transport.
#include <cstddef>
#include <string_view>

namespace mesa::transport::detail {

/// True when `key` is the base64 of exactly 16 bytes: 22 characters of the
/// base64 alphabet, the last of them carrying 2 data bits and 4 zero bits
/// (A, Q, g or w), then "==".
inline bool is_websocket_key(std::string_view key) {
    auto const base64 = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    };
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    for (std::size_t i = 0; i < 22; ++i)
        if (!base64(key[i])) return false;
    char const last = key[21];
    return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

}  // namespace mesa::transport::detail
