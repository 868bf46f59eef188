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
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <sched.h>

#if __has_include(<mesa/broker/detail/redis_uri.hpp>)
#include <mesa/broker/detail/redis_uri.hpp>

#include "../common/secrets.hpp"
#define MESA_GATEWAY_CHECKS_REDIS_URI 1
#endif

namespace gateway {

/// Most server instances (MESA_THREADS) a gateway runs: beyond the cores of any one machine.
inline constexpr std::uint32_t max_threads = 256;

/// Where the cgroup v2 CPU quota of the process is read (MESA_CGROUP_CPU_MAX).
inline constexpr char default_cgroup_cpu_max[] = "/sys/fs/cgroup/cpu.max";

/// The CPUs a cgroup v2 `cpu.max` line ("QUOTA PERIOD" or "max PERIOD")
/// allows, rounded up; nullopt for no limit or a line it does not understand.
inline std::optional<std::uint32_t> cpus_of_cpu_max(std::string const& line) {
    unsigned long long quota = 0, period = 0;
    char tail = 0;
    if (std::sscanf(line.c_str(), "%llu %llu %c", &quota, &period, &tail) != 2 || period == 0 || quota == 0)
        return std::nullopt;
    return static_cast<std::uint32_t>(std::min<unsigned long long>((quota + period - 1) / period, max_threads));
}

/// The CPUs this process may run on (sched_getaffinity), else the hardware's count.
inline std::uint32_t affinity_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return static_cast<std::uint32_t>(CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

/// One server instance per CPU the process may use: its affinity mask, bounded
/// by the cgroup's CPU quota read from `cpu_max_path` (a container limited to
/// 2 CPUs on a 64-core host runs 2 instances, not 64).
inline std::uint32_t default_threads(std::string const& cpu_max_path = default_cgroup_cpu_max) {
    std::uint32_t n = affinity_cpus();
    std::ifstream in(cpu_max_path);
    std::string line;
    if (in && std::getline(in, line)) {
        if (auto quota = cpus_of_cpu_max(line)) n = std::min(n, *quota);
    }
    return std::clamp<std::uint32_t>(n, 1, max_threads);
}

enum class log_format { text, json };
enum class log_level { debug, info, warning, error };

/// Everything the gateway reads from its environment. Durations in ms.
struct config {
    std::uint16_t port = 4500;                       // MESA_PORT (0: any free port, reported at start-up)
    std::uint32_t threads = 1;                       // MESA_THREADS: server instances sharing the port (default: CPUs)
    std::optional<std::string> path;                 // MESA_PATH; unset: every path is served
    std::string namespace_name;                      // MESA_NAMESPACE
    std::optional<std::string> redis_uri;            // REDIS_URI; unset: single node, in-memory broker
    std::vector<std::string> redis_sentinels;        // REDIS_SENTINELS, host:port,...; set: not REDIS_URI
    std::string redis_sentinel_master = "mymaster";  // REDIS_SENTINEL_MASTER
    std::optional<std::string> redis_sentinel_password;  // REDIS_SENTINEL_PASSWORD: AUTH for the sentinels
    std::optional<std::string> redis_username;           // REDIS_USERNAME: the master's user (with REDIS_SENTINELS)
    std::optional<std::string> redis_password;           // REDIS_PASSWORD: the master's (REDIS_SENTINELS)
    std::optional<int> redis_db;                         // REDIS_DB: the master's database (REDIS_SENTINELS)
    std::optional<std::uint32_t> redis_replicas_to_acknowledge;  // REDIS_REPLICAS_TO_ACKNOWLEDGE: WAIT after stores
    std::uint32_t redis_replica_timeout_ms = 1000;               // REDIS_REPLICA_TIMEOUT
    std::uint32_t redis_command_timeout_ms = 5000;               // REDIS_COMMAND_TIMEOUT; 0: off
    bool redis_tls = false;                                    // rediss:// in REDIS_URI, or REDIS_TLS (also sentinels)
    std::optional<std::string> redis_tls_ca;                   // REDIS_TLS_CA; unset: the system's trust store
    std::optional<std::string> redis_tls_cert, redis_tls_key;  // REDIS_TLS_CERT, REDIS_TLS_KEY: client certificate
    std::optional<std::string> redis_tls_server_name;          // REDIS_TLS_SERVER_NAME: verified and sent as SNI
    bool redis_tls_insecure = false;                           // REDIS_TLS_INSECURE: no verification (tests only)
    bool enforce_equal_versions = false;                       // ENFORCE_EQUAL_VERSIONS
    bool store_messages = false;                               // STORE_MESSAGES
    bool sync_enabled = false;                                 // SYNC_ENABLED
    std::uint32_t sync_redelivery_interval_ms = 0;             // SYNC_REDELIVERY_INTERVAL
    std::uint32_t sync_max_backlog = 1000;                     // SYNC_MAX_BACKLOG
    std::uint32_t sync_max_attempts = 10;                      // SYNC_MAX_ATTEMPTS
    std::uint32_t presence_ttl_ms = 15000;                     // MESA_PRESENCE_TTL
    bool portals_enabled = false;                              // PORTALS_ENABLED
    bool portal_distribute_load = true;                        // PORTAL_DISTRIBUTE_LOAD
    bool heartbeats_enabled = false;                           // HEARTBEATS_ENABLED
    std::uint32_t heartbeat_interval_ms = 10000;               // HEARTBEAT_INTERVAL
    std::uint32_t heartbeat_max_attempts = 3;                  // HEARTBEAT_MAX_ATTEMPTS
    bool reconnects_enabled = false;                           // RECONNECTS_ENABLED
    std::uint32_t reconnect_interval_ms = 5000;                // RECONNECT_INTERVAL
    std::uint32_t auth_timeout_ms = 10000;                     // AUTH_TIMEOUT (0: no deadline)
    std::uint32_t auth_expiry_grace_ms = 0;                    // AUTH_EXPIRY_GRACE: added to a token's exp
    bool auth_required = false;                                // AUTH_REQUIRED
    bool auth_send_user_object = true;                         // AUTH_SEND_USER_OBJECT
    bool auth_disconnect_on_fail = true;                       // AUTH_DISCONNECT_ON_FAIL
    bool auth_store_connected_users = true;                    // AUTH_STORE_CONNECTED_USERS
    bool enable_logging = true;                                // ENABLE_LOGGING
    std::optional<std::string> ws_key;                  // WS_KEY: HS256 secret of client JWTs; unset: every auth fails
    std::optional<std::string> api_key;                 // MESA_API_KEY: bearer key of POST /dispatch; unset: no check
    std::uint32_t max_backlog_bytes = 1u << 20;         // MESA_MAX_BACKLOG (0: no bound)
    std::uint32_t max_connections = 100000;             // MESA_MAX_CONNECTIONS (0: no limit)
    std::uint32_t tcp_keepalive_s = 60;                 // MESA_TCP_KEEPALIVE: idle seconds before probes (0: off)
    std::uint32_t max_connections_per_user = 0;         // MESA_MAX_CONNECTIONS_PER_USER (0: no cap)
    std::uint32_t max_upgrades_per_second = 0;          // MESA_MAX_UPGRADES_PER_SECOND (0: no limit)
    std::uint32_t upgrade_burst = 0;                    // MESA_UPGRADE_BURST (0: the rate)
    std::uint32_t idempotency_ttl_ms = 300000;          // MESA_IDEMPOTENCY_TTL: a dispatch's Idempotency-Key is kept
    std::vector<std::string> allowed_origins;           // MESA_ALLOWED_ORIGINS, comma-separated; empty: any
    std::uint32_t max_messages_per_second = 50;         // MESA_MAX_MESSAGES_PER_SECOND (0: no limit)
    std::uint32_t message_burst = 100;                  // MESA_MESSAGE_BURST
    std::optional<std::string> tls_cert;                // TLS_CERT: PEM certificate chain; set with TLS_KEY: wss://
    std::optional<std::string> tls_key;                 // TLS_KEY: PEM private key of TLS_CERT
    std::optional<std::string> tls_ca;                  // TLS_CA: PEM CAs; set: clients must present a certificate
    std::optional<std::uint16_t> admin_port;            // MESA_ADMIN_PORT: /metrics, /health, /ready there, not public
    std::string admin_host = "127.0.0.1";               // MESA_ADMIN_HOST
    std::uint32_t ready_grace_ms = 10000;               // MESA_READY_GRACE: broker outage tolerated by /ready
    std::uint32_t shutdown_delay_ms = 0;                // MESA_SHUTDOWN_DELAY: /ready 503 before clients are closed
    gateway::log_format log_format = log_format::text;  // LOG_FORMAT
    gateway::log_level log_level = log_level::info;     // LOG_LEVEL

    /// True when the gateway joins a Redis cluster (REDIS_URI or REDIS_SENTINELS).
    bool redis() const noexcept { return redis_uri || !redis_sentinels.empty(); }

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
        {"MESA_THREADS", "CPUs the process may use",
         "server instances sharing the port, one thread each (1-256); default: the CPUs of the affinity mask, "
         "at most the cgroup's CPU quota"},
        {"MESA_CGROUP_CPU_MAX", default_cgroup_cpu_max,
         "cgroup v2 cpu.max file whose quota bounds the default of MESA_THREADS"},
        {"MESA_PATH", "unset: every path", "WebSocket path, e.g. /ws; other paths get 404 on upgrade"},
        {"MESA_NAMESPACE", "none", "suffix of every Redis name; isolates clusters sharing a Redis"},
        {"REDIS_URI", "unset: in-memory broker",
         "redis://[[user]:password@]host[:port][/db] (rediss://...: over TLS): join a Redis cluster"},
        {"REDIS_URI_FILE", "unset", "file holding REDIS_URI (instead of it)"},
        {"REDIS_SENTINELS", "unset",
         "host:port,host:port,...: Redis Sentinels to ask for the master (followed through failovers); "
         "not with REDIS_URI"},
        {"REDIS_SENTINEL_MASTER", "mymaster", "name of the master in the sentinels' configuration (sentinel monitor)"},
        {"REDIS_SENTINEL_PASSWORD", "unset", "password of the sentinels (AUTH), not of the master"},
        {"REDIS_SENTINEL_PASSWORD_FILE", "unset", "file holding REDIS_SENTINEL_PASSWORD (instead of it)"},
        {"REDIS_USERNAME", "unset: the default user", "ACL user of the master found through REDIS_SENTINELS"},
        {"REDIS_PASSWORD", "unset", "password of REDIS_URI, kept out of the URI; with REDIS_SENTINELS, of the master"},
        {"REDIS_PASSWORD_FILE", "unset", "file holding REDIS_PASSWORD (instead of it)"},
        {"REDIS_DB", "0", "database of the master found through REDIS_SENTINELS (0-1000000)"},
        {"REDIS_REPLICAS_TO_ACKNOWLEDGE", "with REDIS_SENTINELS every replica of the master (at least 1), else 0",
         "replicas that must acknowledge (WAIT) a stored message before it counts as taken (0-100; 0: no wait)"},
        {"REDIS_REPLICA_TIMEOUT", "1000",
         "ms a store waits for REDIS_REPLICAS_TO_ACKNOWLEDGE, else the dispatch fails (503) (1-3600000)"},
        {"REDIS_COMMAND_TIMEOUT", "5000",
         "ms Redis may leave a command unanswered before its connection counts as lost (dispatches answer 503, "
         "/ready 503 past MESA_READY_GRACE, it reconnects) (0-3600000; 0: wait as long as the connection lives)"},
        {"REDIS_TLS", "false: true with a rediss:// REDIS_URI",
         "TLS to Redis, and to the sentinels and their master with REDIS_SENTINELS"},
        {"REDIS_TLS_CA", "unset: the system's trust store", "PEM file of the CAs that sign Redis's certificate"},
        {"REDIS_TLS_CERT", "unset", "PEM client certificate for a Redis with tls-auth-clients (with REDIS_TLS_KEY)"},
        {"REDIS_TLS_KEY", "unset", "PEM private key of REDIS_TLS_CERT"},
        {"REDIS_TLS_SERVER_NAME", "unset: the host connected to",
         "name Redis's certificate must hold, sent as SNI (e.g. when sentinels report IP addresses)"},
        {"REDIS_TLS_INSECURE", "false", "true: no verification of Redis's certificate (tests only; logged)"},
        {"ENFORCE_EQUAL_VERSIONS", "false", "close (1002) clients whose CLIENT_VERSION differs"},
        {"STORE_MESSAGES", "false", "keep each client's sent/received messages"},
        {"SYNC_ENABLED", "false", "store messages for offline ids, redeliver on authentication"},
        {"SYNC_REDELIVERY_INTERVAL", "0", "ms between redelivered messages (0-3600000)"},
        {"SYNC_MAX_BACKLOG", "1000",
         "messages kept per offline user, and per online user until confirmed; the oldest go first (0: no bound)"},
        {"SYNC_MAX_ATTEMPTS", "10",
         "redeliveries of a user's messages no socket confirms, in a row, before they are given up (0: never)"},
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
        {"AUTH_EXPIRY_GRACE", "0",
         "ms a client stays past its token's exp before it is closed with 4004, unless it refreshed (0-3600000)"},
        {"AUTH_REQUIRED", "false", "broadcasts skip clients that have not authenticated"},
        {"AUTH_SEND_USER_OBJECT", "true", "op 22 carries the user object {id}"},
        {"AUTH_DISCONNECT_ON_FAIL", "true", "close (1008) a client whose authentication fails"},
        {"AUTH_STORE_CONNECTED_USERS", "true", "keep authenticated ids in the broker's connected set"},
        {"ENABLE_LOGGING", "true", "one stderr line per connection, authentication, disconnection, error"},
        {"LOG_FORMAT", "text", "text (one line per event) or json (one JSON object per line)"},
        {"LOG_LEVEL", "info", "least level logged: debug, info, warning or error"},
        {"WS_KEY", "unset: every authentication fails", "HS256 secret of the client JWTs (op 2 {token}; payload id)"},
        {"WS_KEY_FILE", "unset", "file holding WS_KEY (instead of it)"},
        {"MESA_API_KEY", "unset: no check",
         "key of POST /dispatch, GET /presence, POST /disconnect (Authorization: Bearer <key>)"},
        {"MESA_API_KEY_FILE", "unset", "file holding MESA_API_KEY (instead of it)"},
        {"MESA_MAX_BACKLOG", "1048576", "bytes waiting for a client before it is closed with 4002 (0: no bound)"},
        {"MESA_MAX_CONNECTIONS", "100000", "open connections past which upgrades get HTTP 503 (0: no limit)"},
        {"MESA_MAX_CONNECTIONS_PER_USER", "0",
         "open sockets one user id may hold in the whole cluster; the next one's authentication closes it with 4005 "
         "(0: no cap)"},
        {"MESA_MAX_UPGRADES_PER_SECOND", "0",
         "WebSocket upgrades per second the gateway accepts on average; the excess gets HTTP 503 with Retry-After "
         "(0: no limit)"},
        {"MESA_UPGRADE_BURST", "the rate", "upgrades accepted at once within that average (0: the rate)"},
        {"MESA_IDEMPOTENCY_TTL", "300000",
         "ms a POST /dispatch's Idempotency-Key is remembered once the broker took it: repeats get its first answer "
         "(1-86400000)"},
        {"MESA_ALLOWED_ORIGINS", "unset: any", "comma-separated Origins browsers may connect from (others: 403)"},
        {"MESA_TCP_KEEPALIVE", "60",
         "seconds a client socket may be silent before TCP keepalive probes it (every 10 s; 6 unanswered: the "
         "connection ends, 1006): a client whose host vanished is found dead (0: off; at most 32767, Linux's bound)"},
        {"MESA_MAX_MESSAGES_PER_SECOND", "50", "average frames a client may send per second, else 4003 (0: no limit)"},
        {"MESA_MESSAGE_BURST", "100", "frames a client may send at once within that average (1-1000000)"},
        {"TLS_CERT", "unset: plain ws://",
         "PEM certificate chain file; with TLS_KEY the port serves wss:// and https://"},
        {"TLS_KEY", "unset", "PEM private key file of TLS_CERT (unencrypted); needs TLS_CERT"},
        {"TLS_CA", "unset: no client certificates",
         "PEM CA file; set: every client must present a certificate it signed"},
        {"MESA_ADMIN_PORT", "unset: /metrics, /health, /ready on MESA_PORT",
         "TCP port of /metrics, /health, /ready (0: any free port); set: MESA_PORT answers them with 404"},
        {"MESA_ADMIN_HOST", "127.0.0.1", "address the admin port listens on"},
        {"MESA_READY_GRACE", "10000", "ms the broker may be unreachable before /ready answers 503 (0-3600000)"},
        {"MESA_SHUTDOWN_DELAY", "0",
         "ms between SIGTERM and closing the clients, while /ready answers 503 (0-3600000)"},
        {"NOTIFY_SOCKET", "set by systemd", "datagram socket told READY=1 once listening and STOPPING=1 at shutdown"},
    };
    return list;
}

/// The text of `mesa-gateway --help`.
inline std::string help_text() {
    std::string out =
        "usage: mesa-gateway [--help | --version] [--NAME=VALUE | --NAME VALUE]...\n"
        "\n"
        "A Mesa WebSocket gateway configured by environment variables, or by options\n"
        "named after them (--mesa-port=4600 for MESA_PORT), which take precedence.\n"
        "Booleans are `true` or `false`; durations are milliseconds. An invalid value\n"
        "stops start-up. A secret X may come from the file of X_FILE instead.\n"
        "\n"
        "HTTP on the same port: POST /dispatch {message, recipients?, excluding?},\n"
        "GET /health (liveness), GET /ready (readiness), GET /metrics (Prometheus);\n"
        "the last three on MESA_ADMIN_PORT instead when it is set.\n"
        "SIGTERM/SIGINT: graceful shutdown.\n"
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

    /// A string that must not be empty, from NAME or else from the file named by NAME_FILE (not both).
    void secret(char const* name, std::optional<std::string>& out) {
        std::string const file_name = std::string(name) + "_FILE";
        auto file = env_(file_name.c_str());
        if (!file) return text(name, out);
        if (env_(name)) return note(file_name.c_str(), std::string("set with ") + name + " (one or the other)");
        std::ifstream in(*file, std::ios::binary);
        if (!in) return fail(file_name.c_str(), *file, "cannot read the file");
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
        if (content.empty()) return fail(file_name.c_str(), *file, "the file is empty");
        out = std::move(content);
    }

    /// One of `names` (their index), or a failure listing them.
    template <class Enum, std::size_t N>
    void choice(char const* name, Enum& out, char const* const (&names)[N]) {
        auto v = env_(name);
        if (!v) return;
        std::string list;
        for (std::size_t i = 0; i < N; ++i) {
            if (*v == names[i]) {
                out = static_cast<Enum>(i);
                return;
            }
            list += (i ? ", " : "") + std::string(names[i]);
        }
        fail(name, *v, "must be one of " + list);
    }

    void note(char const* name, std::string const& why) { errors_.push_back(std::string(name) + ": " + why); }

    std::optional<std::string> get(char const* name) { return env_(name); }

private:
    env_lookup const& env_;
    std::vector<std::string>& errors_;
};

}  // namespace detail

#ifdef MESA_GATEWAY_CHECKS_REDIS_URI
using tools::with_redis_password;
#endif

/// Reads every variable through `env`; unset variables keep their defaults.
inline parsed_config parse_config(env_lookup const& env) {
    parsed_config result;
    config& c = result.value;
    detail::reader r(env, result.errors);

    r.integer("MESA_PORT", c.port, 0, 65535);
    std::string cpu_max = default_cgroup_cpu_max;
    if (auto v = r.get("MESA_CGROUP_CPU_MAX")) cpu_max = *v;
    if (r.get("MESA_THREADS"))
        r.integer("MESA_THREADS", c.threads, 1, max_threads);
    else
        c.threads = default_threads(cpu_max);
    r.text("MESA_PATH", c.path);
    if (c.path && c.path->front() != '/') r.fail("MESA_PATH", *c.path, "must start with '/'");
    if (auto ns = r.get("MESA_NAMESPACE")) c.namespace_name = *ns;
    r.secret("REDIS_URI", c.redis_uri);
    std::optional<std::string> redis_password;
    r.secret("REDIS_PASSWORD", redis_password);
    if (auto sentinels = r.get("REDIS_SENTINELS")) {
        std::size_t start = 0;
        while (start <= sentinels->size()) {
            auto end = sentinels->find(',', start);
            if (end == std::string::npos) end = sentinels->size();
            auto one = sentinels->substr(start, end - start);
            while (!one.empty() && one.front() == ' ') one.erase(0, 1);
            while (!one.empty() && one.back() == ' ') one.pop_back();
            if (!one.empty()) c.redis_sentinels.push_back(one);
            start = end + 1;
        }
        if (c.redis_sentinels.empty()) r.fail("REDIS_SENTINELS", *sentinels, "must list at least one host:port");
#ifdef MESA_GATEWAY_CHECKS_REDIS_URI
        for (auto const& one : c.redis_sentinels) {
            try {
                (void)mesa::broker::detail::parse_sentinel_address(one);
            } catch (std::exception const& e) {
                r.fail("REDIS_SENTINELS", *sentinels, e.what());
            }
        }
#endif
    }
    bool const sentinels = r.get("REDIS_SENTINELS").has_value();
    if (sentinels && (r.get("REDIS_URI") || r.get("REDIS_URI_FILE")))
        r.note("REDIS_SENTINELS",
               "set with REDIS_URI: give one or the other (REDIS_URI: one Redis; "
               "REDIS_SENTINELS: the sentinels that know the master)");
    if (auto master = r.get("REDIS_SENTINEL_MASTER")) {
        if (master->empty())
            r.fail("REDIS_SENTINEL_MASTER", *master, "must not be empty (unset it instead)");
        else
            c.redis_sentinel_master = *master;
        if (!sentinels) r.note("REDIS_SENTINEL_MASTER", "needs REDIS_SENTINELS");
    }
    r.secret("REDIS_SENTINEL_PASSWORD", c.redis_sentinel_password);
    if (c.redis_sentinel_password && !sentinels) r.note("REDIS_SENTINEL_PASSWORD", "needs REDIS_SENTINELS");
    r.text("REDIS_USERNAME", c.redis_username);
    if (c.redis_username && !sentinels)
        r.note("REDIS_USERNAME", "needs REDIS_SENTINELS (with REDIS_URI, put the user in the URI)");
    if (c.redis_username && !redis_password) r.note("REDIS_USERNAME", "needs REDIS_PASSWORD");
    if (r.get("REDIS_DB")) {
        int db = 0;
        r.integer("REDIS_DB", db, 0, 1'000'000);
        c.redis_db = db;
        if (!sentinels) r.note("REDIS_DB", "needs REDIS_SENTINELS (with REDIS_URI, put the database in the URI)");
    }
    if (r.get("REDIS_REPLICAS_TO_ACKNOWLEDGE")) {
        std::uint32_t replicas = 0;
        r.integer("REDIS_REPLICAS_TO_ACKNOWLEDGE", replicas, 0, 100);
        c.redis_replicas_to_acknowledge = replicas;
    }
    r.integer("REDIS_REPLICA_TIMEOUT", c.redis_replica_timeout_ms, 1, max_duration_ms);
    r.integer("REDIS_COMMAND_TIMEOUT", c.redis_command_timeout_ms, 0, max_duration_ms);
    if (sentinels) c.redis_password = redis_password;
    if (redis_password && !c.redis_uri && !sentinels) r.note("REDIS_PASSWORD", "needs REDIS_URI or REDIS_SENTINELS");
    r.boolean("REDIS_TLS", c.redis_tls);
    if (c.redis_uri && c.redis_uri->rfind("rediss://", 0) == 0) {
        if (r.get("REDIS_TLS") && !c.redis_tls) r.note("REDIS_TLS", "is false but REDIS_URI is rediss:// (TLS)");
        c.redis_tls = true;
    }
    for (auto const* name : {"REDIS_REPLICAS_TO_ACKNOWLEDGE", "REDIS_REPLICA_TIMEOUT", "REDIS_COMMAND_TIMEOUT"})
        if (r.get(name) && !c.redis()) r.note(name, "needs REDIS_URI or REDIS_SENTINELS");
    r.readable_file("REDIS_TLS_CA", c.redis_tls_ca);
    r.readable_file("REDIS_TLS_CERT", c.redis_tls_cert);
    r.readable_file("REDIS_TLS_KEY", c.redis_tls_key);
    r.text("REDIS_TLS_SERVER_NAME", c.redis_tls_server_name);
    r.boolean("REDIS_TLS_INSECURE", c.redis_tls_insecure);
    if (r.get("REDIS_TLS_CERT").has_value() != r.get("REDIS_TLS_KEY").has_value())
        r.note("REDIS_TLS_CERT", "and REDIS_TLS_KEY go together (a client certificate and its key)");
    if (!c.redis_tls)
        for (auto const* name :
             {"REDIS_TLS_CA", "REDIS_TLS_CERT", "REDIS_TLS_KEY", "REDIS_TLS_SERVER_NAME", "REDIS_TLS_INSECURE"})
            if (r.get(name)) r.note(name, "needs TLS: a rediss:// REDIS_URI or REDIS_TLS=true");
    if (c.redis_tls && !c.redis()) r.note("REDIS_TLS", "needs REDIS_URI or REDIS_SENTINELS");
#ifdef MESA_GATEWAY_CHECKS_REDIS_URI
    if (c.redis_uri && redis_password && !sentinels) {
        try {
            c.redis_uri = with_redis_password(*c.redis_uri, *redis_password);
        } catch (std::exception const& e) {
            r.note("REDIS_PASSWORD", e.what());
        }
    }
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
    r.integer("SYNC_MAX_BACKLOG", c.sync_max_backlog, 0, 1000000);
    r.integer("SYNC_MAX_ATTEMPTS", c.sync_max_attempts, 0, 1000000);
    r.integer("MESA_PRESENCE_TTL", c.presence_ttl_ms, 300, max_duration_ms);
    r.boolean("PORTALS_ENABLED", c.portals_enabled);
    r.boolean("PORTAL_DISTRIBUTE_LOAD", c.portal_distribute_load);
    r.boolean("HEARTBEATS_ENABLED", c.heartbeats_enabled);
    r.integer("HEARTBEAT_INTERVAL", c.heartbeat_interval_ms, 1, max_duration_ms);
    r.integer("HEARTBEAT_MAX_ATTEMPTS", c.heartbeat_max_attempts, 0, 1000);
    r.boolean("RECONNECTS_ENABLED", c.reconnects_enabled);
    r.integer("RECONNECT_INTERVAL", c.reconnect_interval_ms, 1, max_duration_ms);
    r.integer("AUTH_TIMEOUT", c.auth_timeout_ms, 0, max_duration_ms);
    r.integer("AUTH_EXPIRY_GRACE", c.auth_expiry_grace_ms, 0, max_duration_ms);
    r.boolean("AUTH_REQUIRED", c.auth_required);
    r.boolean("AUTH_SEND_USER_OBJECT", c.auth_send_user_object);
    r.boolean("AUTH_DISCONNECT_ON_FAIL", c.auth_disconnect_on_fail);
    r.boolean("AUTH_STORE_CONNECTED_USERS", c.auth_store_connected_users);
    r.boolean("ENABLE_LOGGING", c.enable_logging);
    r.secret("WS_KEY", c.ws_key);
    r.secret("MESA_API_KEY", c.api_key);
    r.integer("MESA_MAX_BACKLOG", c.max_backlog_bytes, 0, 1u << 30);
    r.integer("MESA_MAX_CONNECTIONS", c.max_connections, 0, 10'000'000);
    r.integer("MESA_MAX_CONNECTIONS_PER_USER", c.max_connections_per_user, 0, 10'000'000);
    r.integer("MESA_MAX_UPGRADES_PER_SECOND", c.max_upgrades_per_second, 0, 10'000'000);
    r.integer("MESA_UPGRADE_BURST", c.upgrade_burst, 0, 10'000'000);
    r.integer("MESA_IDEMPOTENCY_TTL", c.idempotency_ttl_ms, 1, 86'400'000);
    if (auto origins = r.get("MESA_ALLOWED_ORIGINS")) {
        std::size_t start = 0;
        while (start <= origins->size()) {
            auto end = origins->find(',', start);
            if (end == std::string::npos) end = origins->size();
            auto origin = origins->substr(start, end - start);
            auto const first = origin.find_first_not_of(" \t"), last = origin.find_last_not_of(" \t");
            if (first != std::string::npos) c.allowed_origins.push_back(origin.substr(first, last - first + 1));
            start = end + 1;
        }
        if (c.allowed_origins.empty()) r.fail("MESA_ALLOWED_ORIGINS", *origins, "must list at least one Origin");
    }
    r.integer("MESA_TCP_KEEPALIVE", c.tcp_keepalive_s, 0, 32'767);  // TCP_KEEPIDLE's bound (tcp(7))
    r.integer("MESA_MAX_MESSAGES_PER_SECOND", c.max_messages_per_second, 0, 1'000'000);
    r.integer("MESA_MESSAGE_BURST", c.message_burst, 1, 1'000'000);
    bool const cert_set = r.get("TLS_CERT").has_value(), key_set = r.get("TLS_KEY").has_value();
    r.readable_file("TLS_CERT", c.tls_cert);
    r.readable_file("TLS_KEY", c.tls_key);
    r.readable_file("TLS_CA", c.tls_ca);
    if (cert_set && !key_set) r.note("TLS_KEY", "must be set with TLS_CERT (both or neither)");
    if (key_set && !cert_set) r.note("TLS_CERT", "must be set with TLS_KEY (both or neither)");
    if (r.get("TLS_CA") && !(cert_set && key_set)) r.note("TLS_CA", "needs TLS_CERT and TLS_KEY");
    if (r.get("MESA_ADMIN_PORT")) {
        std::uint16_t admin = 0;
        r.integer("MESA_ADMIN_PORT", admin, 0, 65535);
        c.admin_port = admin;
        if (admin != 0 && admin == c.port) r.note("MESA_ADMIN_PORT", "must differ from MESA_PORT");
    }
    if (auto host = r.get("MESA_ADMIN_HOST")) {
        if (host->empty())
            r.fail("MESA_ADMIN_HOST", *host, "must not be empty (unset it instead)");
        else
            c.admin_host = *host;
    }
    r.integer("MESA_READY_GRACE", c.ready_grace_ms, 0, max_duration_ms);
    r.integer("MESA_SHUTDOWN_DELAY", c.shutdown_delay_ms, 0, max_duration_ms);
    static char const* const formats[] = {"text", "json"};
    r.choice("LOG_FORMAT", c.log_format, formats);
    static char const* const levels[] = {"debug", "info", "warning", "error"};
    r.choice("LOG_LEVEL", c.log_level, levels);
    return result;
}

}  // namespace gateway
