#pragma once
// Idempotent sends: a send that carries a key happens at most once per key in
// the cluster while its result is remembered (the Idempotency-Key of HTTP
// APIs: draft-ietf-httpapi-idempotency-key-header; Stripe's semantics).
//
//   server.send(m, {"u1"}, {}, {"order-42", R"({"status":"accepted"})"},
//               [](std::error_code ec, mesa::send_result r) {
//                   // r.outcome: sent, replayed (r.result: the first send's), in_flight
//               });
//
// The key is claimed at the broker in the same atomic step as the store or
// publish it guards (broker/requirements.hpp), so two senders racing with one
// key never both send. Then:
// - taken by the broker (also taken_unconfirmed: the message went out, a
//   retry must not repeat it): `result` is recorded under the key for `ttl`;
//   a repeat within it is answered `replayed` with that result, unsent;
// - refused by the broker (nothing taken): the key is released at once, so a
//   retry sends;
// - a repeat while the first attempt is under way is answered `in_flight`;
// - a sender that dies between claim and result leaves the key in flight for
//   `in_flight_ttl`, after which a retry sends.
// Keys live per namespace (mesa::keys::idempotency): clusters sharing a Redis
// do not collide.
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

namespace mesa {

/// The longest key accepted, in bytes.
inline constexpr std::size_t max_idempotency_key_bytes = 255;

/// True for a key of 1 to max_idempotency_key_bytes bytes of visible ASCII
/// (0x21-0x7E) but `"` and `\`: no spaces, no control characters, nothing a
/// log, a Redis key name or the quoted (structured-field string) form of the
/// HTTP header would need to escape.
inline bool is_idempotency_key(std::string_view key) noexcept {
    if (key.empty() || key.size() > max_idempotency_key_bytes) return false;
    for (char c : key)
        if (c < 0x21 || c > 0x7E || c == '"' || c == '\\') return false;
    return true;
}

/// What makes a send idempotent (see the top of this header).
struct idempotency {
    /// The caller's key (is_idempotency_key), e.g. a UUID per logical operation.
    std::string key{};
    /// Opaque text recorded once the send was taken; repeats get it back
    /// (the gateway records its 202 body).
    std::string result{};
    /// How long a taken send's result is remembered. 5 minutes: longer than a
    /// client's retries with backoff, short enough to keep the broker small.
    std::chrono::milliseconds ttl{std::chrono::minutes(5)};
    /// How long the key stays in flight if its sender never finishes (it
    /// crashed between claim and result). Longer than an attempt takes
    /// (a store waits at most replica_timeout for replicas), short enough
    /// that a retry after a crash is not refused for long.
    std::chrono::milliseconds in_flight_ttl{std::chrono::seconds(10)};
};

/// What an idempotent send did.
enum class send_outcome {
    sent,       ///< the key was free: the message was sent and its result recorded
    replayed,   ///< a send with this key was taken before: nothing sent; send_result::result is its result
    in_flight,  ///< a send with this key is under way: nothing sent (HTTP APIs answer 409)
};

struct send_result {
    send_outcome outcome = send_outcome::sent;
    /// sent: the result recorded; replayed: the first send's result; in_flight: empty.
    std::string result;
};

/// `ec` set: the broker did not take the message (nothing recorded, the key
/// is free again) or, as broker::condition::taken_unconfirmed, took it
/// without confirming it durable (recorded: a retry is replayed).
using send_handler = std::function<void(std::error_code, send_result)>;

}  // namespace mesa
