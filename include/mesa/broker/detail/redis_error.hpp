#pragma once
// The error codes mesa::broker::redis completes operations with.
#include <string>
#include <system_error>
#include <type_traits>

#include <mesa/broker/completion.hpp>

namespace mesa::broker {

/// Why a redis broker operation failed; compares with the std::error_code a
/// handler receives. Plain values, usable from any thread:
///
///   broker.set_add(key, id, [](std::error_code ec) {
///       if (ec == mesa::broker::redis_errc::disconnected) { /* retry later */ } });
enum class redis_errc {
    /// No connection to Redis (down, unreachable, or lost while the command was
    /// in flight: then the command may or may not have been applied).
    disconnected = 1,
    /// More commands were pending than options::max_pending_commands allows.
    queue_full,
    /// Redis answered with an error (the log hook receives its text).
    server_error,
    /// Redis answered with a reply of an unexpected type.
    unexpected_reply,
    /// The stored undelivered-messages value is not a JSON array.
    bad_backlog,
    /// Redis Sentinel: no sentinel knows a master of options::sentinel_master.
    master_unknown,
    /// Stored on the master, but not acknowledged by options::replicas_to_acknowledge
    /// replicas within options::replica_timeout: a failover now could lose it.
    not_replicated,
};

namespace detail {

class redis_category_impl final : public std::error_category {
public:
    char const* name() const noexcept override { return "mesa.redis"; }
    std::string message(int value) const override {
        switch (static_cast<redis_errc>(value)) {
            case redis_errc::disconnected:
                return "not connected to redis";
            case redis_errc::queue_full:
                return "too many redis commands pending";
            case redis_errc::server_error:
                return "redis replied with an error";
            case redis_errc::unexpected_reply:
                return "unexpected redis reply";
            case redis_errc::bad_backlog:
                return "stored backlog is not a JSON array";
            case redis_errc::master_unknown:
                return "the redis sentinels know no master of that name";
            case redis_errc::not_replicated:
                return "not acknowledged by enough redis replicas in time";
        }
        return "unknown redis broker error";
    }
    std::error_condition default_error_condition(int value) const noexcept override {
        if (static_cast<redis_errc>(value) == redis_errc::not_replicated) return condition::taken_unconfirmed;
        return {value, *this};
    }
};

}  // namespace detail

inline std::error_category const& redis_category() noexcept {
    static detail::redis_category_impl const category;
    return category;
}

inline std::error_code make_error_code(redis_errc e) noexcept { return {static_cast<int>(e), redis_category()}; }

}  // namespace mesa::broker

template <>
struct std::is_error_code_enum<mesa::broker::redis_errc> : std::true_type {};
