#pragma once
// WebSocket close codes the server sends, and why.
#include <cstddef>
#include <cstdint>

namespace mesa::close_code {

inline constexpr std::uint16_t normal = 1000;            // DISCONNECT_CLIENT, client.disconnect()
inline constexpr std::uint16_t going_away = 1001;        // server shutting down
inline constexpr std::uint16_t protocol_error = 1002;    // version rule mismatch
inline constexpr std::uint16_t unsupported_data = 1003;  // binary frame
inline constexpr std::uint16_t abnormal = 1006;          // connection dropped without a close frame
inline constexpr std::uint16_t invalid_payload = 1007;   // not JSON, not an object, wrong field types
inline constexpr std::uint16_t policy_violation = 1008;  // authentication failed
inline constexpr std::uint16_t message_too_big = 1009;   // frame over max_frame_bytes
inline constexpr std::uint16_t internal_error = 1011;    // unexpected server-side failure

// Application codes (4000-4999), ours: the reference closes without a code.
inline constexpr std::uint16_t heartbeat_timeout = 4000;       // no op 11 after max_attempts beats
inline constexpr std::uint16_t authentication_timeout = 4001;  // no successful op 2 within the timeout
inline constexpr std::uint16_t backlog_exceeded = 4002;        // slow consumer: unsent bytes over max_backlog_bytes
inline constexpr std::uint16_t rate_limited = 4003;            // more messages per second than rate_limit allows
inline constexpr std::uint16_t token_expired = 4004;           // the credentials' expiry passed without a refresh
inline constexpr std::uint16_t too_many_connections = 4005;  // the user already holds max_connections_per_user sockets

/// True for the codes an application may close users' sockets with through
/// the cluster (server::disconnect, dispatcher::disconnect, the gateway's
/// POST /disconnect): 1000, or an application code of 4000-4999 (RFC 6455
/// §7.4.2) other than ours above.
constexpr bool may_disconnect_with(std::uint16_t code) noexcept {
    return code == normal || (code > too_many_connections && code <= 4999);
}

/// Longest close reason: a control frame's payload is at most 125 bytes,
/// two of them the code (RFC 6455 §5.5).
inline constexpr std::size_t max_reason_bytes = 123;

/// True for the codes that refuse a client (bad input, a broken rule, a
/// limit): every one raises the server's error event.
constexpr bool is_refusal(std::uint16_t code) noexcept {
    switch (code) {
        case protocol_error:
        case unsupported_data:
        case invalid_payload:
        case policy_violation:
        case message_too_big:
        case internal_error:
        case heartbeat_timeout:
        case authentication_timeout:
        case backlog_exceeded:
        case rate_limited:
        case token_expired:
        case too_many_connections:
            return true;
        default:
            return false;
    }
}

}  // namespace mesa::close_code
