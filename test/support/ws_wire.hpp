#pragma once
// WebSocket frames as bytes on the wire, for tests that speak the protocol
// over raw sockets (plain or TLS): the upgrade request's headers, client
// frames (masked or not, any length), and the server frames of a response.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mesa_test::wire {

inline std::string const upgrade_headers =
    "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A client frame with first byte `first` (FIN, RSV, opcode), masked unless `masked` is false.
inline std::string client_frame(std::uint8_t first, std::string const& payload, bool masked = true) {
    std::string f(1, char(first));
    std::uint8_t const mask_bit = masked ? 0x80 : 0;
    if (payload.size() < 126) {
        f += char(mask_bit | payload.size());
    } else if (payload.size() <= 0xFFFF) {
        f += char(mask_bit | 126);
        f += char(payload.size() >> 8);
        f += char(payload.size() & 0xFF);
    } else {
        f += char(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) f += char((std::uint64_t(payload.size()) >> shift) & 0xFF);
    }
    char const key[4] = {0x11, 0x22, 0x33, 0x44};
    if (masked) f.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += masked ? char(payload[i] ^ key[i % 4]) : payload[i];
    return f;
}

inline std::string close_payload(std::uint16_t code, std::string const& reason = {}) {
    return std::string{char(code >> 8), char(code & 0xFF)} + reason;
}

struct server_frame {
    int opcode;
    std::string payload;
    std::uint16_t close_code() const {
        return payload.size() >= 2 ? std::uint16_t((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1])) : 0;
    }
};

/// The frames after the 101 response of `response` (unmasked server frames).
inline std::vector<server_frame> server_frames(std::string const& response) {
    std::vector<server_frame> out;
    auto at = response.find("\r\n\r\n");
    if (at == std::string::npos) return out;
    at += 4;
    while (at + 2 <= response.size()) {
        int const opcode = std::uint8_t(response[at]) & 0x0F;
        std::uint64_t len = std::uint8_t(response[at + 1]) & 0x7F;
        std::size_t head = 2;
        if (len == 126) {
            if (at + 4 > response.size()) break;
            len = (std::uint64_t(std::uint8_t(response[at + 2])) << 8) | std::uint8_t(response[at + 3]);
            head = 4;
        } else if (len == 127) {
            if (at + 10 > response.size()) break;
            len = 0;
            for (std::size_t i = 0; i < 8; ++i) len = (len << 8) | std::uint8_t(response[at + 2 + i]);
            head = 10;
        }
        if (at + head + len > response.size()) break;
        out.push_back({opcode, response.substr(at + head, len)});
        at += head + len;
    }
    return out;
}

/// A frame sequence the server must refuse by closing with `code` (and
/// reporting that code), for a server with max_frame_bytes 1024.
struct frame_refusal {
    char const* name;
    std::string frames;
    std::uint16_t code;
    // websocketpp's transports report close code 999 as the peer's, and
    // answer a close reason that is not UTF-8 with 1002 while reporting
    // 1000: these two are checked on the Asio transports only.
    bool asio_only = false;
};

/// The RFC 6455 cases every transport refuses (§5.2, §5.5, §7.4, §8.1).
inline std::vector<frame_refusal> frame_refusals() {
    std::string const ping_text = R"({"op":0,"t":"PING","d":{"n":1}})";
    return {
        {"126-byte ping", client_frame(0x89, std::string(126, 'p')), 1002},
        {"unmasked client frame", client_frame(0x81, ping_text, false), 1002},
        {"RSV1 without an extension", client_frame(0xC1, ping_text), 1002},
        {"reserved opcode 3", client_frame(0x83, ping_text), 1002},
        {"reserved control opcode 0xB", client_frame(0x8B, ""), 1002},
        {"continuation without a message", client_frame(0x80, ping_text), 1002},
        {"close code 1005 on the wire", client_frame(0x88, close_payload(1005)), 1002},
        {"close code 999", client_frame(0x88, close_payload(999)), 1002, true},
        {"close with a 1-byte payload", client_frame(0x88, "x"), 1002},
        {"invalid UTF-8 in a text frame", client_frame(0x81, "{\"op\":0,\"t\":\"\xff\"}"), 1007},
        {"invalid UTF-8 in a close reason", client_frame(0x88, close_payload(1000, "\xc3")), 1007, true},
        {"a frame over max_frame_bytes", client_frame(0x81, std::string(2000, ' ')), 1009},
        {"fragments over max_frame_bytes",
         client_frame(0x01, std::string(600, ' ')) + client_frame(0x80, std::string(600, ' ')), 1009},
    };
}

}  // namespace mesa_test::wire
