#pragma once
// Completion handler types shared by every broker.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace mesa::broker {

/// What any broker's error means to its callers, to compare error codes with
/// (`ec == broker::condition::taken_unconfirmed`) whatever the broker.
enum class condition {
    /// The broker took the operation (stored, published) but could not
    /// confirm it as durable (e.g. not acknowledged by enough replicas): a
    /// retry may repeat it.
    taken_unconfirmed = 1,
};

inline std::error_category const& condition_category() noexcept {
    struct category final : std::error_category {
        char const* name() const noexcept override { return "mesa.broker"; }
        std::string message(int value) const override {
            return static_cast<condition>(value) == condition::taken_unconfirmed
                       ? "taken by the broker, but not confirmed as durable"
                       : "unknown broker condition";
        }
    };
    static category const instance;
    return instance;
}

inline std::error_condition make_error_condition(condition c) noexcept {
    return {static_cast<int>(c), condition_category()};
}

using completion = std::function<void(std::error_code)>;
using contains_handler = std::function<void(std::error_code, std::vector<bool>)>;
using members_handler = std::function<void(std::error_code, std::vector<std::string>)>;
using count_handler = std::function<void(std::error_code, std::int64_t)>;
/// Per asked item, in order (presence_query: sockets, -1 unknown, 0 none).
using counts_handler = std::function<void(std::error_code, std::vector<std::int64_t>)>;
/// Receives the stored messages (JSON texts) in the order they were appended.
using take_handler = std::function<void(std::error_code, std::vector<std::string>)>;
/// Receives each publication on a subscribed channel.
using channel_handler = std::function<void(std::string_view payload)>;

/// What sync_route did with one message (see requirements.hpp).
struct route_result {
    std::int64_t seq = 0;                                       // its number in the outboxes
    std::vector<std::string> published;                         // online ids: published to them
    std::vector<std::string> stored;                            // offline ids: appended to their backlogs
    std::vector<std::pair<std::string, std::int64_t>> dropped;  // id -> oldest entries dropped to make room
    std::vector<std::string> failed;  // ids whose stored backlog is unreadable: nothing stored
};
using route_handler = std::function<void(std::error_code, route_result)>;

/// A message for a socket that authenticated: from its id's outbox
/// (`from_outbox`: sent before, not confirmed), or taken from its backlog into
/// the outbox, under `seq`.
struct taken_message {
    std::int64_t seq = 0;
    std::string text;
    bool from_outbox = false;
};
/// What sync_take took; `given_up`: the id's redeliveries went unconfirmed too
/// often, so the messages were removed instead (their seqs are 0).
struct take_result {
    std::vector<taken_message> messages;
    bool given_up = false;
};
using sync_take_handler = std::function<void(std::error_code, take_result)>;

/// An idempotency key to claim in the same atomic step as a store or
/// publish (idempotent_route, idempotent_publish; see requirements.hpp).
struct idempotency_claim {
    std::string key;                                 // the broker's key: mesa::keys::idempotency(<the caller's key>)
    std::string token;                               // unique to this attempt: what the key holds while it is in flight
    std::chrono::milliseconds in_flight_ttl{10000};  // until the key is free again if the attempt never ends
};

/// What an idempotent operation found under its key.
struct claim_result {
    enum class state {
        claimed,    // the key was free: now in flight for this attempt, and the operation done
        in_flight,  // another attempt holds it: nothing done
        done,       // an attempt was taken before: nothing done; `result` is what it recorded
    };
    state status = state::claimed;
    std::string result;
};
using claim_handler = std::function<void(std::error_code, claim_result)>;
using route_once_handler = std::function<void(std::error_code, claim_result, route_result)>;

}  // namespace mesa::broker

template <>
struct std::is_error_condition_enum<mesa::broker::condition> : std::true_type {};
