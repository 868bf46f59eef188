#pragma once
// The reference's DISCONNECT_CLIENT event (op 5, over the `ws` channel, its
// recipients the ids to disconnect): every server closes those ids' sockets.
// Ours carries the close code and reason in `d` ({"code", "reason"}); Node
// servers ignore `d` and close with 1000.
//
//   broker.publish(keys.ws(), serialize(envelope{disconnect_event(4100, "banned"), {"u1"}, {}, {}}));
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include <mesa/close_code.hpp>
#include <mesa/message.hpp>
#include <mesa/opcode.hpp>

namespace mesa {

/// The event closing sockets with `code` and `reason`. Throws
/// std::invalid_argument unless close_code::may_disconnect_with(code) and
/// `reason` fits close_code::max_reason_bytes.
inline message disconnect_event(std::uint16_t code = close_code::normal, std::string reason = {}) {
    if (!close_code::may_disconnect_with(code))
        throw std::invalid_argument("mesa: disconnect code " + std::to_string(code) +
                                    " is not 1000 or 4006-4999 (4000-4005 are the server's own)");
    if (reason.size() > close_code::max_reason_bytes)
        throw std::invalid_argument("mesa: a close reason is at most 123 bytes (RFC 6455 section 5.5)");
    json::object d;
    if (code != close_code::normal) d["code"] = code;
    if (!reason.empty()) d["reason"] = std::move(reason);
    message m(opcode::internal_event, std::move(d));
    m.t = "DISCONNECT_CLIENT";
    return m;
}

/// The code and reason a DISCONNECT_CLIENT event asks for; a missing or
/// unacceptable one (from any publisher) falls back to 1000 and the default reason.
inline std::pair<std::uint16_t, std::string> disconnect_of(message const& m) {
    std::pair<std::uint16_t, std::string> out{close_code::normal, "disconnected by the cluster"};
    if (auto const* code = m.d.if_contains("code"); code && (code->is_int64() || code->is_uint64())) {
        // Built here it holds a uint64, parsed from text an int64.
        auto const n = code->is_int64()
                           ? code->get_int64()
                           : (code->get_uint64() > 0xFFFF ? -1 : static_cast<std::int64_t>(code->get_uint64()));
        if (n >= 0 && n <= 0xFFFF && close_code::may_disconnect_with(static_cast<std::uint16_t>(n)))
            out.first = static_cast<std::uint16_t>(n);
    }
    if (auto const* reason = m.d.if_contains("reason"); reason && reason->is_string() &&
                                                        !reason->get_string().empty() &&
                                                        reason->get_string().size() <= close_code::max_reason_bytes)
        out.second = std::string(reason->get_string());
    return out;
}

}  // namespace mesa
