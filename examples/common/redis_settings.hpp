#pragma once
// The Redis settings of the tools (mesa-dispatcher, mesa-portal), the same as
// the gateway's: one Redis (--redis, REDIS_URI) or the sentinels that know the
// master (--sentinels, REDIS_SENTINELS), over TLS with rediss:// or
// REDIS_TLS=true, with the variables of the gateway (README, "The gateway")
// for the rest.
//
//   tools::redis_flags flags;
//   tools::add_redis_options(app, flags);      // CLI11: --redis, --sentinels, --sentinel-master, --redis-db
//   mesa::broker::redis::options o;
//   if (!tools::redis_settings(flags, o)) ... // nothing given; throws std::invalid_argument on a bad value
//
// TLS needs OpenSSL: built with MESA_TOOLS_REDIS_TLS defined (meson does when
// OpenSSL is found), else REDIS_TLS and rediss:// are refused, saying so.
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <mesa/broker/redis.hpp>
#ifdef MESA_TOOLS_REDIS_TLS
#include <mesa/broker/redis_tls.hpp>
#endif

#include <CLI/CLI.hpp>

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
    "  --redis URI       redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or unix:///path;\n"
    "                    else $REDIS_URI, else the file named by $REDIS_URI_FILE (it or sentinels required)\n"
    "  --sentinels H:P,H:P  Redis Sentinels that know the master (else $REDIS_SENTINELS); not with --redis\n"
    "  --sentinel-master N  the master's name in the sentinels (else $REDIS_SENTINEL_MASTER, else mymaster)\n"
    "  --redis-db N      database of the master found through the sentinels (else $REDIS_DB)\n"
    "With sentinels: $REDIS_SENTINEL_PASSWORD (or _FILE) for the sentinels, $REDIS_USERNAME and\n"
    "$REDIS_PASSWORD (or _FILE) for the master. $REDIS_REPLICAS_TO_ACKNOWLEDGE and $REDIS_REPLICA_TIMEOUT (ms)\n"
    "make stores wait for that many replicas. $REDIS_COMMAND_TIMEOUT (ms, default 5000, 0: off): a command\n"
    "unanswered that long makes its connection count as lost (it fails; the connection is made again).\n"
    "A Redis password can be kept out of the URI and the command line: $REDIS_PASSWORD, or the file\n"
    "named by $REDIS_PASSWORD_FILE.\n"
    "TLS (rediss://, or $REDIS_TLS=true, also for the sentinels): $REDIS_TLS_CA (CA file; else the system's),\n"
    "$REDIS_TLS_CERT and $REDIS_TLS_KEY (client certificate), $REDIS_TLS_SERVER_NAME (name to verify and\n"
    "send as SNI instead of the host), $REDIS_TLS_INSECURE=true (no verification: tests only).\n";

/// Adds --redis, --sentinels, --sentinel-master and --redis-db to `app`, into `flags`.
inline void add_redis_options(CLI::App& app, redis_flags& flags) {
    app.add_option("--redis", flags.uri);
    app.add_option("--sentinels", flags.sentinels);
    app.add_option("--sentinel-master", flags.sentinel_master);
    app.add_option("--redis-db", flags.db);
}

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

inline bool boolean(char const* name) {
    auto const v = flag_or_env(std::nullopt, name);
    if (!v || *v == "false") return false;
    if (*v == "true") return true;
    throw std::invalid_argument(std::string(name) + "=\"" + *v + "\": must be true or false");
}

/// TLS from REDIS_TLS_* when `on` (rediss:// or REDIS_TLS=true); refuses
/// REDIS_TLS_* when not.
inline void redis_tls_settings(bool on, mesa::broker::redis::options& o) {
    bool const insecure = boolean("REDIS_TLS_INSECURE");
    std::optional<std::string> files[3];
    char const* const names[3] = {"REDIS_TLS_CA", "REDIS_TLS_CERT", "REDIS_TLS_KEY"};
    for (int i = 0; i < 3; ++i) {
        files[i] = flag_or_env(std::nullopt, names[i]);
        if (files[i] && files[i]->empty())
            throw std::invalid_argument(std::string(names[i]) + ": must not be empty (unset it instead)");
    }
    auto const server_name = flag_or_env(std::nullopt, "REDIS_TLS_SERVER_NAME");
    if (!on) {
        for (auto const* name : {"REDIS_TLS_CA", "REDIS_TLS_CERT", "REDIS_TLS_KEY", "REDIS_TLS_SERVER_NAME"})
            if (std::getenv(name))
                throw std::invalid_argument(std::string(name) + " needs TLS: a rediss:// URI or REDIS_TLS=true");
        if (insecure) throw std::invalid_argument("REDIS_TLS_INSECURE needs TLS: a rediss:// URI or REDIS_TLS=true");
        return;
    }
#ifdef MESA_TOOLS_REDIS_TLS
    mesa::broker::redis_tls_options t;
    if (files[0]) t.ca_file = *files[0];
    if (files[1]) t.cert_file = *files[1];
    if (files[2]) t.key_file = *files[2];
    if (server_name) t.server_name = *server_name;
    t.verify = !insecure;
    if (files[1].has_value() != files[2].has_value())
        throw std::invalid_argument("REDIS_TLS_CERT and REDIS_TLS_KEY go together (a client certificate and its key)");
    o.tls = mesa::broker::redis_tls(t);  // throws naming the file it cannot use
#else
    (void)o;
    (void)server_name;
    throw std::invalid_argument(
        "Redis over TLS (rediss://, REDIS_TLS) needs a build with OpenSSL (libssl-dev): this one has none");
#endif
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
    if (auto ms = detail::flag_or_env(std::nullopt, "REDIS_COMMAND_TIMEOUT"))
        o.command_timeout = std::chrono::milliseconds(detail::number("REDIS_COMMAND_TIMEOUT", *ms, 0, 3600000));
    if (!sentinels) {
        if (master) throw std::invalid_argument("REDIS_SENTINEL_MASTER (--sentinel-master) needs REDIS_SENTINELS");
        if (db) throw std::invalid_argument("REDIS_DB (--redis-db) needs REDIS_SENTINELS (else put it in the URI)");
        if (username) throw std::invalid_argument("REDIS_USERNAME needs REDIS_SENTINELS (else put it in the URI)");
        if (secret("REDIS_SENTINEL_PASSWORD"))
            throw std::invalid_argument("REDIS_SENTINEL_PASSWORD needs REDIS_SENTINELS");
        auto uri = redis_uri(given.uri);
        if (!uri) {
            detail::redis_tls_settings(false, o);
            return false;
        }
        o.uri = *uri;
        detail::redis_tls_settings(detail::boolean("REDIS_TLS") || mesa::broker::detail::parse_redis_uri(o.uri).tls, o);
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
    detail::redis_tls_settings(detail::boolean("REDIS_TLS"), o);
    return true;
}

/// redis_settings(), requiring an address: throws std::invalid_argument when
/// neither a URI nor sentinels are given.
inline void require_redis_settings(redis_flags const& given, mesa::broker::redis::options& o) {
    if (!redis_settings(given, o))
        throw std::invalid_argument(
            "--redis URI (or REDIS_URI, REDIS_URI_FILE) or --sentinels (or REDIS_SENTINELS) is required");
}

/// Where `o` points, without credentials, for messages.
inline std::string describe_redis(mesa::broker::redis::options const& o) {
    if (o.sentinels.empty()) return mesa::broker::detail::parse_redis_uri(o.uri).describe();
    std::string out = "master '" + o.sentinel_master + "' through the sentinels";
    for (std::size_t i = 0; i < o.sentinels.size(); ++i) out += (i ? "," : " ") + o.sentinels[i];
    return out;
}

}  // namespace tools
