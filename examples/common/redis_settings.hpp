#pragma once
// The Redis settings of the tools (mesa-dispatcher, mesa-portal), the same as
// the gateway's: one Redis (--redis, REDIS_URI) or the sentinels that know the
// master (--sentinels, REDIS_SENTINELS), with the variables of the gateway
// (README, "The gateway") for the rest.
//
//   tools::redis_flags flags;                // filled by the command line
//   mesa::broker::redis::options o;
//   if (!tools::redis_settings(flags, o)) ... // nothing given; throws std::invalid_argument on a bad value
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <mesa/broker/redis.hpp>

#include "secrets.hpp"

namespace tools {

/// What the command line gave (each overrides its variable).
struct redis_flags {
    std::optional<std::string> uri;              // --redis (REDIS_URI)
    std::optional<std::string> sentinels;        // --sentinels (REDIS_SENTINELS)
    std::optional<std::string> sentinel_master;  // --sentinel-master (REDIS_SENTINEL_MASTER)
    std::optional<std::string> db;               // --redis-db (REDIS_DB)
};

/// The text of the usage lines that describe these settings.
inline constexpr char redis_settings_usage[] =
    "  --sentinels H:P,H:P  Redis Sentinels that know the master (else $REDIS_SENTINELS); not with --redis\n"
    "  --sentinel-master N  the master's name in the sentinels (else $REDIS_SENTINEL_MASTER, else mymaster)\n"
    "  --redis-db N      database of the master found through the sentinels (else $REDIS_DB)\n"
    "With sentinels: $REDIS_SENTINEL_PASSWORD (or _FILE) for the sentinels, $REDIS_USERNAME and\n"
    "$REDIS_PASSWORD (or _FILE) for the master. $REDIS_REPLICAS_TO_ACKNOWLEDGE and $REDIS_REPLICA_TIMEOUT (ms)\n"
    "make stores wait for that many replicas.\n";

namespace detail {

inline std::optional<std::string> flag_or_env(std::optional<std::string> const& given, char const* name) {
    if (given) return given;
    if (char const* v = std::getenv(name)) return std::string(v);
    return std::nullopt;
}

inline long number(std::string const& name, std::string const& text, long min, long max) {
    char* end = nullptr;
    long const n = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end || n < min || n > max)
        throw std::invalid_argument(name + "=\"" + text + "\": must be an integer from " + std::to_string(min) +
                                    " to " + std::to_string(max));
    return n;
}

}  // namespace detail

/// Fills the address and credentials of `o` from `given` and the environment;
/// false when neither a URI nor sentinels are given. Throws std::invalid_argument
/// (naming the setting) on a bad or contradictory one.
inline bool redis_settings(redis_flags const& given, mesa::broker::redis::options& o) {
    auto const sentinels = detail::flag_or_env(given.sentinels, "REDIS_SENTINELS");
    auto const master = detail::flag_or_env(given.sentinel_master, "REDIS_SENTINEL_MASTER");
    auto const db = detail::flag_or_env(given.db, "REDIS_DB");
    auto const username = detail::flag_or_env(std::nullopt, "REDIS_USERNAME");
    if (auto n = detail::flag_or_env(std::nullopt, "REDIS_REPLICAS_TO_ACKNOWLEDGE"))
        o.replicas_to_acknowledge =
            static_cast<std::size_t>(detail::number("REDIS_REPLICAS_TO_ACKNOWLEDGE", *n, 0, 100));
    if (auto ms = detail::flag_or_env(std::nullopt, "REDIS_REPLICA_TIMEOUT"))
        o.replica_timeout = std::chrono::milliseconds(detail::number("REDIS_REPLICA_TIMEOUT", *ms, 1, 3600000));
    if (!sentinels) {
        if (master) throw std::invalid_argument("REDIS_SENTINEL_MASTER (--sentinel-master) needs REDIS_SENTINELS");
        if (db) throw std::invalid_argument("REDIS_DB (--redis-db) needs REDIS_SENTINELS (else put it in the URI)");
        if (username) throw std::invalid_argument("REDIS_USERNAME needs REDIS_SENTINELS (else put it in the URI)");
        if (secret("REDIS_SENTINEL_PASSWORD"))
            throw std::invalid_argument("REDIS_SENTINEL_PASSWORD needs REDIS_SENTINELS");
        auto uri = redis_uri(given.uri);
        if (!uri) return false;
        o.uri = *uri;
        return true;
    }
    if (given.uri || std::getenv("REDIS_URI") || std::getenv("REDIS_URI_FILE"))
        throw std::invalid_argument(
            "REDIS_SENTINELS (--sentinels) set with REDIS_URI (--redis): give one or the other (REDIS_URI: one Redis; "
            "REDIS_SENTINELS: the sentinels that know the master)");
    o.sentinels.clear();
    std::size_t start = 0;
    while (start <= sentinels->size()) {
        auto end = sentinels->find(',', start);
        if (end == std::string::npos) end = sentinels->size();
        auto one = sentinels->substr(start, end - start);
        if (!one.empty()) {
            (void)mesa::broker::detail::parse_sentinel_address(one);  // throws, naming the address
            o.sentinels.push_back(one);
        }
        start = end + 1;
    }
    if (o.sentinels.empty()) throw std::invalid_argument("REDIS_SENTINELS=\"" + *sentinels + "\": lists no host:port");
    o.sentinel_master = master ? *master : "mymaster";
    if (o.sentinel_master.empty()) throw std::invalid_argument("REDIS_SENTINEL_MASTER: must not be empty");
    if (auto p = secret("REDIS_SENTINEL_PASSWORD")) o.sentinel_password = *p;
    auto const password = secret("REDIS_PASSWORD");
    if (username && !password) throw std::invalid_argument("REDIS_USERNAME needs REDIS_PASSWORD");
    if (username) o.username = *username;
    if (password) o.password = *password;
    if (db) o.db = static_cast<int>(detail::number("REDIS_DB", *db, 0, 1000000));
    return true;
}

/// Where `o` points, without credentials, for messages.
inline std::string describe_redis(mesa::broker::redis::options const& o) {
    if (o.sentinels.empty()) return mesa::broker::detail::parse_redis_uri(o.uri).describe();
    std::string out = "master '" + o.sentinel_master + "' through the sentinels";
    for (std::size_t i = 0; i < o.sentinels.size(); ++i) out += (i ? "," : " ") + o.sentinels[i];
    return out;
}

}  // namespace tools
