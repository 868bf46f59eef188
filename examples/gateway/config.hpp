#pragma once
// The gateway's configuration, read from the environment with the names and
// defaults of Mega (the reference's gateway) and, where Mega has none, the
// reference server's defaults (PROTOCOL.md, "Server configuration").
//
//   auto parsed = gateway::parse_config([](char const* name) -> std::optional<std::string> {
//       if (char const* v = std::getenv(name)) return std::string(v);
//       return std::nullopt;
//   });
//   if (!parsed.ok()) for (auto const& e : parsed.errors) std::cerr << e << "\n";
//
// Pure but for one check: no sockets, no Asio, so tests parse configurations
// without a process; TLS_* files are only opened to see that they are readable.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#if __has_include(<mesa/broker/detail/redis_uri.hpp>)
#include <mesa/broker/detail/redis_uri.hpp>
#define MESA_GATEWAY_CHECKS_REDIS_URI 1
#endif

namespace gateway {

/// Most server instances (MESA_THREADS) a gateway runs: beyond the cores of any one machine.
inline constexpr std::uint32_t max_threads = 256;

/// One server instance per core, as the hardware reports them (1 when it cannot tell).
inline std::uint32_t default_threads() {
    return std::clamp<std::uint32_t>(std::thread::hardware_concurrency(), 1, max_threads);
}

/// Everything the gateway reads from its environment. Durations in ms.
struct config {
    std::uint16_t port = 4500;                      // MESA_PORT (0: any free port, reported at start-up)
    std::uint32_t threads = default_threads();      // MESA_THREADS: server instances sharing the port
    std::optional<std::string> path;                // MESA_PATH; unset: every path is served
    std::string namespace_name;                     // MESA_NAMESPACE
    std::optional<std::string> redis_uri;           // REDIS_URI; unset: single node, in-memory broker
    bool enforce_equal_versions = false;            // ENFORCE_EQUAL_VERSIONS
    bool store_messages = false;                    // STORE_MESSAGES
    bool sync_enabled = false;                      // SYNC_ENABLED
    std::uint32_t sync_redelivery_interval_ms = 0;  // SYNC_REDELIVERY_INTERVAL
    std::uint32_t presence_ttl_ms = 15000;          // MESA_PRESENCE_TTL
    bool portals_enabled = false;                   // PORTALS_ENABLED
    bool portal_distribute_load = true;             // PORTAL_DISTRIBUTE_LOAD
    bool heartbeats_enabled = false;                // HEARTBEATS_ENABLED
    std::uint32_t heartbeat_interval_ms = 10000;    // HEARTBEAT_INTERVAL
    std::uint32_t heartbeat_max_attempts = 3;       // HEARTBEAT_MAX_ATTEMPTS
    bool reconnects_enabled = false;                // RECONNECTS_ENABLED
    std::uint32_t reconnect_interval_ms = 5000;     // RECONNECT_INTERVAL
    std::uint32_t auth_timeout_ms = 10000;          // AUTH_TIMEOUT (0: no deadline)
    bool auth_required = false;                     // AUTH_REQUIRED
    bool auth_send_user_object = true;              // AUTH_SEND_USER_OBJECT
    bool auth_disconnect_on_fail = true;            // AUTH_DISCONNECT_ON_FAIL
    bool auth_store_connected_users = true;         // AUTH_STORE_CONNECTED_USERS
    bool enable_logging = true;                     // ENABLE_LOGGING
    std::optional<std::string> ws_key;              // WS_KEY: HS256 secret of client JWTs; unset: every auth fails
    std::optional<std::string> api_key;             // MESA_API_KEY: bearer key of POST /dispatch; unset: no check
    std::uint32_t max_backlog_bytes = 1u << 20;     // MESA_MAX_BACKLOG (0: no bound)
    std::uint32_t max_connections = 100000;         // MESA_MAX_CONNECTIONS (0: no limit)
    std::vector<std::string> allowed_origins;       // MESA_ALLOWED_ORIGINS, comma-separated; empty: any
    std::uint32_t max_messages_per_second = 50;     // MESA_MAX_MESSAGES_PER_SECOND (0: no limit)
    std::uint32_t message_burst = 100;              // MESA_MESSAGE_BURST
    std::optional<std::string> tls_cert;            // TLS_CERT: PEM certificate chain; set with TLS_KEY: wss://
    std::optional<std::string> tls_key;             // TLS_KEY: PEM private key of TLS_CERT
    std::optional<std::string> tls_ca;              // TLS_CA: PEM CAs; set: clients must present a certificate

    /// True when the gateway serves wss:// (TLS_CERT and TLS_KEY set).
    bool tls() const noexcept { return tls_cert && tls_key; }
};

/// One environment variable the gateway reads, for --help.
struct variable {
    char const* name;
    char const* default_value;
    char const* meaning;
};

// Longest accepted duration: an hour is far beyond any sensible interval and
// keeps every value inside the 32-bit range.
inline constexpr std::uint32_t max_duration_ms = 3'600'000;

inline std::vector<variable> const& variables() {
    static std::vector<variable> const list = {
        {"MESA_PORT", "4500", "TCP port of WebSocket and HTTP (0-65535; 0: any free port)"},
        {"MESA_THREADS", "number of cores", "server instances sharing the port, one thread each (1-256)"},
        {"MESA_PATH", "unset: every path", "WebSocket path, e.g. /ws; other paths get 404 on upgrade"},
        {"MESA_NAMESPACE", "none", "suffix of every Redis name; isolates clusters sharing a Redis"},
        {"REDIS_URI", "unset: in-memory broker", "redis://[[user]:password@]host[:port][/db]: join a Redis cluster"},
        {"ENFORCE_EQUAL_VERSIONS", "false", "close (1002) clients whose CLIENT_VERSION differs"},
        {"STORE_MESSAGES", "false", "keep each client's sent/received messages"},
        {"SYNC_ENABLED", "false", "store messages for offline ids, redeliver on authentication"},
        {"SYNC_REDELIVERY_INTERVAL", "0", "ms between redelivered messages (0-3600000)"},
        {"MESA_PRESENCE_TTL", "15000",
         "ms after which a crashed gateway's users and connections leave the cluster's presence (300-3600000)"},
        {"PORTALS_ENABLED", "false", "send every client event to one portal of the pool"},
        {"PORTAL_DISTRIBUTE_LOAD", "true", "round-robin over portals (false: random)"},
        {"HEARTBEATS_ENABLED", "false", "send op 1 and close clients that stop answering"},
        {"HEARTBEAT_INTERVAL", "10000", "ms between heartbeats (1-3600000)"},
        {"HEARTBEAT_MAX_ATTEMPTS", "3", "unanswered heartbeats before closing (0-1000)"},
        {"RECONNECTS_ENABLED", "false", "advertise a reconnect interval to clients"},
        {"RECONNECT_INTERVAL", "5000", "ms clients wait before reconnecting (1-3600000)"},
        {"AUTH_TIMEOUT", "10000", "ms a client has to authenticate (0-3600000; 0: no deadline)"},
        {"AUTH_REQUIRED", "false", "broadcasts skip clients that have not authenticated"},
        {"AUTH_SEND_USER_OBJECT", "true", "op 22 carries the user object {id}"},
        {"AUTH_DISCONNECT_ON_FAIL", "true", "close (1008) a client whose authentication fails"},
        {"AUTH_STORE_CONNECTED_USERS", "true", "keep authenticated ids in the broker's connected set"},
        {"ENABLE_LOGGING", "true", "one stderr line per connection, authentication, disconnection, error"},
        {"WS_KEY", "unset: every authentication fails", "HS256 secret of the client JWTs (op 2 {token}; payload id)"},
        {"MESA_API_KEY", "unset: no check", "key of POST /dispatch (Authorization: Bearer <key>)"},
        {"MESA_MAX_BACKLOG", "1048576", "bytes waiting for a client before it is closed with 4002 (0: no bound)"},
        {"MESA_MAX_CONNECTIONS", "100000", "open connections past which upgrades get HTTP 503 (0: no limit)"},
        {"MESA_ALLOWED_ORIGINS", "unset: any", "comma-separated Origins browsers may connect from (others: 403)"},
        {"MESA_MAX_MESSAGES_PER_SECOND", "50", "average frames a client may send per second, else 4003 (0: no limit)"},
        {"MESA_MESSAGE_BURST", "100", "frames a client may send at once within that average (1-1000000)"},
        {"TLS_CERT", "unset: plain ws://",
         "PEM certificate chain file; with TLS_KEY the port serves wss:// and https://"},
        {"TLS_KEY", "unset", "PEM private key file of TLS_CERT (unencrypted); needs TLS_CERT"},
        {"TLS_CA", "unset: no client certificates",
         "PEM CA file; set: every client must present a certificate it signed"},
    };
    return list;
}

/// The text of `mesa-gateway --help`.
inline std::string help_text() {
    std::string out =
        "usage: mesa-gateway [--help | --version]\n"
        "\n"
        "A Mesa WebSocket gateway configured by environment variables. Booleans are\n"
        "`true` or `false`; durations are milliseconds. An invalid value stops start-up.\n"
        "\n"
        "HTTP on the same port: POST /dispatch {message, recipients?, excluding?},\n"
        "GET /health, GET /metrics (Prometheus). SIGTERM/SIGINT: graceful shutdown.\n"
        "\n"
        "variables (default):\n";
    for (auto const& v : variables()) {
        std::string head = "  " + std::string(v.name) + " (" + v.default_value + ")";
        out += head + "\n      " + v.meaning + "\n";
    }
    return out;
}

/// A parsed configuration, or the reasons it is invalid (each names its variable).
struct parsed_config {
    config value;
    std::vector<std::string> errors;
    bool ok() const noexcept { return errors.empty(); }
};

using env_lookup = std::function<std::optional<std::string>(char const* name)>;

namespace detail {

class reader {
public:
    explicit reader(env_lookup const& env, std::vector<std::string>& errors) : env_(env), errors_(errors) {}

    void boolean(char const* name, bool& out) {
        auto v = env_(name);
        if (!v) return;
        if (*v == "true")
            out = true;
        else if (*v == "false")
            out = false;
        else
            fail(name, *v, "must be true or false");
    }

    template <class Int>
    void integer(char const* name, Int& out, std::uint64_t min, std::uint64_t max) {
        auto v = env_(name);
        if (!v) return;
        std::uint64_t n = 0;
        bool ok = !v->empty() && v->size() <= 10;
        for (char c : *v) {
            if (c < '0' || c > '9') {
                ok = false;
                break;
            }
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (!ok || n < min || n > max) {
            fail(name, *v, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
            return;
        }
        out = static_cast<Int>(n);
    }

    /// A string that must not be empty when set.
    void text(char const* name, std::optional<std::string>& out) {
        auto v = env_(name);
        if (!v) return;
        if (v->empty()) {
            fail(name, *v, "must not be empty (unset it instead)");
            return;
        }
        out = std::move(*v);
    }

    void fail(char const* name, std::string const& value, std::string const& why) {
        errors_.push_back(std::string(name) + "=\"" + value + "\": " + why);
    }

    /// A file path that must not be empty and must be readable when set.
    void readable_file(char const* name, std::optional<std::string>& out) {
        text(name, out);
        if (!out) return;
        if (std::FILE* f = std::fopen(out->c_str(), "rb")) {
            std::fclose(f);
            return;
        }
        int const error = errno;
        fail(name, *out, "cannot read the file: " + std::error_code(error, std::generic_category()).message());
        out.reset();
    }

    void note(char const* name, std::string const& why) { errors_.push_back(std::string(name) + ": " + why); }

    std::optional<std::string> get(char const* name) { return env_(name); }

private:
    env_lookup const& env_;
    std::vector<std::string>& errors_;
};

}  // namespace detail

/// Reads every variable through `env`; unset variables keep their defaults.
inline parsed_config parse_config(env_lookup const& env) {
    parsed_config result;
    config& c = result.value;
    detail::reader r(env, result.errors);

    r.integer("MESA_PORT", c.port, 0, 65535);
    r.integer("MESA_THREADS", c.threads, 1, max_threads);
    r.text("MESA_PATH", c.path);
    if (c.path && c.path->front() != '/') r.fail("MESA_PATH", *c.path, "must start with '/'");
    if (auto ns = r.get("MESA_NAMESPACE")) c.namespace_name = *ns;
    r.text("REDIS_URI", c.redis_uri);
#ifdef MESA_GATEWAY_CHECKS_REDIS_URI
    if (c.redis_uri) {
        try {
            (void)mesa::broker::detail::parse_redis_uri(*c.redis_uri);
        } catch (std::exception const& e) {
            r.note("REDIS_URI", e.what());
        }
    }
#endif
    r.boolean("ENFORCE_EQUAL_VERSIONS", c.enforce_equal_versions);
    r.boolean("STORE_MESSAGES", c.store_messages);
    r.boolean("SYNC_ENABLED", c.sync_enabled);
    r.integer("SYNC_REDELIVERY_INTERVAL", c.sync_redelivery_interval_ms, 0, max_duration_ms);
    r.integer("MESA_PRESENCE_TTL", c.presence_ttl_ms, 300, max_duration_ms);
    r.boolean("PORTALS_ENABLED", c.portals_enabled);
    r.boolean("PORTAL_DISTRIBUTE_LOAD", c.portal_distribute_load);
    r.boolean("HEARTBEATS_ENABLED", c.heartbeats_enabled);
    r.integer("HEARTBEAT_INTERVAL", c.heartbeat_interval_ms, 1, max_duration_ms);
    r.integer("HEARTBEAT_MAX_ATTEMPTS", c.heartbeat_max_attempts, 0, 1000);
    r.boolean("RECONNECTS_ENABLED", c.reconnects_enabled);
    r.integer("RECONNECT_INTERVAL", c.reconnect_interval_ms, 1, max_duration_ms);
    r.integer("AUTH_TIMEOUT", c.auth_timeout_ms, 0, max_duration_ms);
    r.boolean("AUTH_REQUIRED", c.auth_required);
    r.boolean("AUTH_SEND_USER_OBJECT", c.auth_send_user_object);
    r.boolean("AUTH_DISCONNECT_ON_FAIL", c.auth_disconnect_on_fail);
    r.boolean("AUTH_STORE_CONNECTED_USERS", c.auth_store_connected_users);
    r.boolean("ENABLE_LOGGING", c.enable_logging);
    r.text("WS_KEY", c.ws_key);
    r.text("MESA_API_KEY", c.api_key);
    r.integer("MESA_MAX_BACKLOG", c.max_backlog_bytes, 0, 1u << 30);
    r.integer("MESA_MAX_CONNECTIONS", c.max_connections, 0, 10'000'000);
    if (auto origins = r.get("MESA_ALLOWED_ORIGINS")) {
        std::size_t start = 0;
        while (start <= origins->size()) {
            auto end = origins->find(',', start);
            if (end == std::string::npos) end = origins->size();
            auto origin = origins->substr(start, end - start);
            if (!origin.empty()) c.allowed_origins.push_back(origin);
            start = end + 1;
        }
        if (c.allowed_origins.empty()) r.fail("MESA_ALLOWED_ORIGINS", *origins, "must list at least one Origin");
    }
    r.integer("MESA_MAX_MESSAGES_PER_SECOND", c.max_messages_per_second, 0, 1'000'000);
    r.integer("MESA_MESSAGE_BURST", c.message_burst, 1, 1'000'000);
    bool const cert_set = r.get("TLS_CERT").has_value(), key_set = r.get("TLS_KEY").has_value();
    r.readable_file("TLS_CERT", c.tls_cert);
    r.readable_file("TLS_KEY", c.tls_key);
    r.readable_file("TLS_CA", c.tls_ca);
    if (cert_set && !key_set) r.note("TLS_KEY", "must be set with TLS_CERT (both or neither)");
    if (key_set && !cert_set) r.note("TLS_CERT", "must be set with TLS_KEY (both or neither)");
    if (r.get("TLS_CA") && !(cert_set && key_set)) r.note("TLS_CA", "needs TLS_CERT and TLS_KEY");
    return result;
}

}  // namespace gateway
