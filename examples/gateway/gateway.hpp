#pragma once
// The gateway itself: Mesa servers with every feature, switched on or off by
// the configuration, JWT authentication, PING/PONG, the HTTP API and a
// graceful shutdown. Transport and broker are template parameters:
// asio_plain (ws://), asio_tls (wss://, TLS_CERT/TLS_KEY), websocketpp_plain or websocketpp_tls;
// broker::memory for a single node, broker::redis to join a cluster.
//
//   return gateway::run_gateway<mesa::transport::asio_plain, mesa::broker::memory>(cfg, {}, "memory", "memory");
//
// MESA_THREADS server instances share the port (SO_REUSEPORT), each on its
// own thread and io_context, owning its clients; the kernel spreads new
// connections over them. They form one cluster: one memory::hub, or each its
// own connections to the same Redis. What the instances share besides the
// broker (connection numbers, the connection limit, the numbers of /metrics)
// is atomic; nothing on the path of a message is.
#include <mesa/mesa.hpp>
#include <mesa/transport/asio.hpp>
#include <mesa/transport/asio_tls.hpp>
#include <mesa/transport/websocketpp_tls.hpp>

#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mesa/version.hpp>

#include "admin.hpp"
#include "config.hpp"
#include "http_api.hpp"
#include "jwt.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "notify.hpp"

namespace gateway {

/// The open WebSocket connections of the whole gateway, against
/// MESA_MAX_CONNECTIONS. The kernel spreads connections over the instances
/// unevenly, so the limit is not split between them: every instance counts
/// here and checks the total.
struct connection_limit {
    std::size_t max = 0;  // 0: no limit
    std::atomic<std::size_t> open{0};

    bool full() const noexcept { return max && open.load(std::memory_order_relaxed) >= max; }
};

/// Transport `Base` that refuses upgrades with HTTP 503 while the gateway is
/// full, after the server's own checks (Origin: 403), and counts every refusal
/// (of upgrades, and of plain HTTP requests apart).
template <class Base>
class limited_transport : public Base {
public:
    struct options : Base::options {
        std::shared_ptr<connection_limit> limit;
        std::shared_ptr<shared_counters> counters;
    };

    limited_transport(asio::io_context& ioc, mesa::transport::settings s, options o)
        : Base(ioc, std::move(s), o), limit_(std::move(o.limit)), counters_(std::move(o.counters)) {}

    void start(mesa::transport::events<typename Base::connection_ptr> ev) {
        // Refused here, the server's Retry-After (of its rate limit) does not apply.
        auto full = std::make_shared<bool>(false);
        ev.admit = [limit = limit_, full, admit = std::move(ev.admit)](std::string_view origin) {
            *full = false;
            if (int const refused = admit ? admit(origin) : 0) return refused;  // a foreign Origin: 403 first
            *full = limit && limit->full();
            return *full ? 503 : 0;
        };
        ev.retry_after = [full, retry_after = std::move(ev.retry_after)] {
            return *full || !retry_after ? 0u : retry_after();
        };
        ev.on_refused = [counters = counters_, refused = std::move(ev.on_refused)](int status, std::string_view target,
                                                                                   std::string_view origin) {
            if (counters) counters->refused(status);
            if (refused) refused(status, target, origin);
        };
        ev.on_http_refused = [counters = counters_, refused = std::move(ev.on_http_refused)](
                                 int status, std::string_view target, std::string_view reason) {
            if (counters) counters->http_refused(status);
            if (refused) refused(status, target, reason);
        };
        Base::start(std::move(ev));
    }

private:
    std::shared_ptr<connection_limit> limit_;
    std::shared_ptr<shared_counters> counters_;
};

template <class Transport, class Broker>
using server_type =
    mesa::server<limited_transport<Transport>, Broker, mesa::heartbeat, mesa::reconnect, mesa::authentication,
                 mesa::sync, mesa::version_rule, mesa::message_store, mesa::portals, mesa::rate_limit>;

/// The server options `cfg` describes, for one of the gateway's instances.
template <class Transport, class Broker>
typename server_type<Transport, Broker>::options server_options(config const& cfg, typename Broker::options broker,
                                                                std::shared_ptr<connection_limit> limit,
                                                                std::shared_ptr<shared_counters> counters) {
    using std::chrono::milliseconds;
    typename server_type<Transport, Broker>::options o;
    o.port = cfg.port;
    o.path = cfg.path;
    o.namespace_name = cfg.namespace_name;
    o.broker = std::move(broker);
    o.max_backlog_bytes = cfg.max_backlog_bytes;
    o.presence_ttl = milliseconds(cfg.presence_ttl_ms);
    o.max_connections = 0;  // the transport checks the whole gateway's count instead
    o.max_connections_per_user = cfg.max_connections_per_user;
    o.transport.limit = std::move(limit);
    o.transport.counters = std::move(counters);
    o.allowed_origins = cfg.allowed_origins;
    o.reuse_port = cfg.threads > 1;  // one instance keeps the usual "address in use" failure
    o.tcp_keepalive.idle = std::chrono::seconds(cfg.tcp_keepalive_s);
    if constexpr (std::is_base_of_v<mesa::transport::detail::tls_files, typename Transport::options>) {
        o.transport.certificate_chain_file = cfg.tls_cert.value_or("");
        o.transport.private_key_file = cfg.tls_key.value_or("");
        o.transport.ca_file = cfg.tls_ca;
    }

    auto& hb = o.template feature<mesa::heartbeat>();
    hb.enabled = cfg.heartbeats_enabled;
    hb.interval = milliseconds(cfg.heartbeat_interval_ms);
    hb.max_attempts = cfg.heartbeat_max_attempts;

    auto& rc = o.template feature<mesa::reconnect>();
    rc.enabled = cfg.reconnects_enabled;
    rc.interval = milliseconds(cfg.reconnect_interval_ms);

    auto& auth = o.template feature<mesa::authentication>();
    auth.enabled = true;  // op 2 is always answered; AUTH_* tune it
    auth.timeout = milliseconds(cfg.auth_timeout_ms);
    auth.required = cfg.auth_required;
    auth.send_user_object = cfg.auth_send_user_object;
    auth.disconnect_on_fail = cfg.auth_disconnect_on_fail;
    auth.store_connected_users = cfg.auth_store_connected_users;

    auto& sy = o.template feature<mesa::sync>();
    sy.enabled = cfg.sync_enabled;
    sy.redelivery_interval = milliseconds(cfg.sync_redelivery_interval_ms);
    sy.max_backlog = cfg.sync_max_backlog;
    sy.max_attempts = cfg.sync_max_attempts;

    o.template feature<mesa::version_rule>().enabled = cfg.enforce_equal_versions;
    o.template feature<mesa::message_store>().enabled = cfg.store_messages;

    auto& portals = o.template feature<mesa::portals>();
    portals.enabled = cfg.portals_enabled;
    portals.distribute_load = cfg.portal_distribute_load;

    auto& limit_rate = o.template feature<mesa::rate_limit>();
    limit_rate.enabled = cfg.max_messages_per_second > 0;
    limit_rate.messages_per_second = cfg.max_messages_per_second;
    limit_rate.burst = cfg.message_burst;
    return o;
}

/// " (TLS_CERT)" when a start-up error is about the file of that variable.
inline std::string tls_variable_of(std::string const& what) {
    for (auto [option, variable] : {std::pair{"certificate_chain_file", "TLS_CERT"},
                                    std::pair{"private_key_file", "TLS_KEY"}, std::pair{"ca_file", "TLS_CA"}}) {
        if (what.find(option) != std::string::npos) return std::string(" (") + variable + ")";
    }
    return {};
}

/// What the instances of one gateway share; each member is safe to use from
/// any instance's thread.
struct shared_state {
    explicit shared_state(config const& c) : cfg(c), log(c), published(c.threads), broker_down_since_ms(c.threads) {
        limit->max = c.max_connections;
    }

    config const& cfg;
    logger log;
    std::atomic<std::uint64_t> next_number{0};  // connection numbers, unique in the process
    std::shared_ptr<connection_limit> limit = std::make_shared<connection_limit>();
    // MESA_MAX_UPGRADES_PER_SECOND over every instance; null: no limit.
    std::shared_ptr<mesa::upgrade_rate_limit> upgrade_limit =
        cfg.max_upgrades_per_second
            ? std::make_shared<mesa::upgrade_rate_limit>(cfg.max_upgrades_per_second, cfg.upgrade_burst)
            : nullptr;
    // Instances hand sends to each other directly, so they reach each other
    // while Redis is down, as one instance's clients do.
    std::shared_ptr<mesa::instance_group> group = std::make_shared<mesa::instance_group>();
    std::shared_ptr<http_api::counter> dispatches = std::make_shared<http_api::counter>(0);
    std::vector<published_metrics> published;  // by instance number
    std::shared_ptr<shared_counters> counters = std::make_shared<shared_counters>();
    std::atomic<bool> stopping{false};  // a signal arrived: /ready answers 503
    // By instance number: since when (steady clock, ms) its broker has been
    // unreachable; 0 while it is reachable.
    std::vector<std::atomic<std::int64_t>> broker_down_since_ms;

    /// The whole gateway's numbers (but http_dispatches, which the API adds).
    metrics total() const {
        metrics m = total_of(published);
        counters->read(m);
        m.version = MESA_VERSION_STRING;
        return m;
    }

    static std::int64_t steady_ms() {
        using namespace std::chrono;
        return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
    }

    /// Why the gateway should get no traffic (GET /ready), or nullopt.
    std::optional<std::string> not_ready() const {
        if (stopping.load(std::memory_order_relaxed)) return std::string("shutting down");
        auto const now = steady_ms();
        for (auto const& since : broker_down_since_ms) {
            auto const s = since.load(std::memory_order_relaxed);
            if (s != 0 && now - s > static_cast<std::int64_t>(cfg.ready_grace_ms))
                return "broker unreachable for " + std::to_string(now - s) + " ms (MESA_READY_GRACE " +
                       std::to_string(cfg.ready_grace_ms) + ")";
        }
        return std::nullopt;
    }
};

/// How often each instance looks at its broker's connection (reconnections
/// counted, outages timed for /ready).
inline constexpr std::chrono::milliseconds broker_watch_interval{100};

/// Time for close frames and broker commands to leave before an instance's
/// io_context stops (as mesa::graceful_shutdown gives them).
inline constexpr std::chrono::milliseconds flush_time{200};

/// One server instance: its io_context, the server with every handler of the
/// gateway, and its HTTP API. Everything but start-up runs on the thread that
/// calls run().
template <class Transport, class Broker>
class instance {
public:
    using server_t = server_type<Transport, Broker>;
    using client_ptr = typename server_t::client_ptr;

    /// Throws what the server's constructor throws.
    instance(shared_state& shared, std::size_t number, typename server_t::options opts, std::string const& broker_name)
        : shared_(shared),
          number_(number),
          server_(ioc_, std::move(opts)),
          api_(
              http_api::hooks{[this](mesa::envelope const& e, mesa::broker::completion done) {
                                  server_.send(e.msg, e.recipients, e.excluding, std::move(done));
                              },
                              [this] {
                                  publish();  // this instance's numbers are fresh; the others' as of their last handler
                                  return shared_.total();
                              },
                              [this] { return shared_.not_ready(); },
                              [counters = shared.counters](std::chrono::steady_clock::duration d) {
                                  counters->dispatch_latency(d);
                              },
                              [this](std::vector<std::string> const& ids, mesa::broker::counts_handler done) {
                                  server_.presence(ids, std::move(done));
                              },
                              [this](std::vector<std::string> ids, std::uint16_t code, std::string reason,
                                     mesa::broker::completion done) {
                                  server_.disconnect(std::move(ids), code, std::move(reason), std::move(done));
                              }},
              shared.cfg.api_key, broker_name, shared.dispatches, !shared.cfg.admin_port) {
        api_.on_refused_header([counters = shared.counters](int status) { counters->http_refused(status); });
        api_.on_dispatch_once(
            [this](mesa::envelope const& e, std::string key, std::string result, mesa::send_handler done) {
                mesa::idempotency once{std::move(key), std::move(result)};
                once.ttl = std::chrono::milliseconds(shared_.cfg.idempotency_ttl_ms);
                // In flight for longer than a store may wait for its replicas.
                once.in_flight_ttl =
                    std::max(once.in_flight_ttl, 2 * std::chrono::milliseconds(shared_.cfg.redis_replica_timeout_ms));
                server_.send(e.msg, e.recipients, e.excluding, once, std::move(done));
            });
        handle_connections();
        handle_authentication();
        server_.on_message([](client_ptr const& c, mesa::message const& m) {
            if (m.t && *m.t == "PING") c->send(mesa::message("PONG", m.d));
        });
        server_.on_http_header([this](mesa::http_request const& header) {
            auto refusal = api_.check_header(header);
            // Logged as handled requests are (below), saying the body was not read.
            bool const dispatch = header.target.rfind("/dispatch", 0) == 0;
            auto const level = dispatch ? log_level::info : log_level::debug;
            if (refusal && log().logs(level) && (!dispatch || log().enabled()))
                log().write(level, "http",
                            "http " + header.method + " " + header.target + " -> " + std::to_string(refusal->status) +
                                " (body not read)",
                            {{"method", header.method}, {"target", header.target}, {"status", refusal->status}});
            return refusal;
        });
        server_.on_http([this](mesa::http_request const& req, mesa::http_responder respond) {
            bool const dispatch = req.target.rfind("/dispatch", 0) == 0;
            auto const level = dispatch ? log_level::info : log_level::debug;
            if (!log().logs(level) || (dispatch && !log().enabled())) return api_.handle(req, std::move(respond));
            api_.handle(req, [this, level, method = req.method, target = req.target,
                              respond = std::move(respond)](mesa::http_response res) {
                log().write(level, "http", "http " + method + " " + target + " -> " + std::to_string(res.status),
                            {{"method", method}, {"target", target}, {"status", res.status}});
                respond(std::move(res));
            });
        });
    }

    instance(instance const&) = delete;
    instance& operator=(instance const&) = delete;

    /// Binds and starts accepting; throws std::system_error when it cannot.
    void start() {
        server_.start();
        publish();
        // An unreachable broker at start counts as an outage from now on.
        was_connected_ = ever_connected_ = server_.broker().connected();
        if (!was_connected_)
            shared_.broker_down_since_ms[number_].store(shared_state::steady_ms());
        else
            log().info("broker_connected", "worker " + std::to_string(number_) + ": broker connected after 0 ms",
                       {{"worker", number_}, {"down_ms", 0}});
        watch_broker();
    }

    /// Answers the admin listener's request (on this instance's thread).
    mesa::http_response operations(mesa::http_request const& req) {
        publish();
        auto res = api_.operations(req);
        log().debug("http", "admin " + req.method + " " + req.target + " -> " + std::to_string(res.status),
                    {{"method", req.method}, {"target", req.target}, {"status", res.status}});
        return res;
    }

    std::uint16_t port() { return server_.port(); }
    asio::io_context& context() noexcept { return ioc_; }
    server_t& server() noexcept { return server_; }

    /// Runs the instance until its io_context stops. With several instances
    /// it publishes its numbers after every handler: websocketpp writes what
    /// a handler sends from a later handler, so whatever a client has
    /// received is already counted by /metrics on any instance. A lone
    /// instance publishes only when it answers /metrics, and keeps run()'s
    /// per-thread recycling of handler memory.
    void run() {
        if (shared_.cfg.threads == 1) {
            ioc_.run();
            return;
        }
        while (ioc_.run_one()) publish();
    }

    /// Closes every client with 1001 on the instance's own thread, then stops
    /// it once the close frames had time to leave. Any thread.
    void shut_down() {
        asio::post(ioc_, [this] {
            server_.stop();
            broker_timer_.cancel();
            flush_timer_.expires_after(flush_time);
            flush_timer_.async_wait([this](std::error_code) { ioc_.stop(); });
        });
    }

private:
    // Connection numbers make the log lines of one connection easy to follow.
    // The id is kept here too: the server clears a client's id before
    // on_disconnection runs.
    struct known {
        std::uint64_t number;
        std::string id;
    };

    logger const& log() const noexcept { return shared_.log; }

    /// Structured fields of a client's log lines.
    boost::json::object fields_of(client_ptr const& c) const {
        boost::json::object f;
        if (!c) return f;
        auto it = numbers_.find(c.get());
        if (it != numbers_.end()) {
            f["client"] = it->second.number;
            if (!it->second.id.empty()) f["id"] = it->second.id;
        } else if (!c->id().empty()) {
            f["id"] = c->id();
        }
        return f;
    }

    /// Counts the ends of broker outages and times them for /ready, polling
    /// connected(): the broker's own on_restored is the server's.
    void watch_broker() {
        broker_timer_.expires_after(broker_watch_interval);
        broker_timer_.async_wait([this](std::error_code ec) {
            if (ec) return;
            bool const now = server_.broker().connected();
            auto& since = shared_.broker_down_since_ms[number_];
            if (was_connected_ && !now) {
                since.store(shared_state::steady_ms(), std::memory_order_relaxed);
                log().warning("broker_lost", "worker " + std::to_string(number_) + ": broker unreachable",
                              {{"worker", number_}});
            } else if (!was_connected_ && now) {
                auto const down_ms = shared_state::steady_ms() - since.load(std::memory_order_relaxed);
                since.store(0, std::memory_order_relaxed);
                if (ever_connected_) shared_.counters->broker_reconnected();
                log().info(ever_connected_ ? "broker_restored" : "broker_connected",
                           "worker " + std::to_string(number_) +
                               (ever_connected_ ? ": broker reachable again after " : ": broker connected after ") +
                               std::to_string(down_ms) + " ms",
                           {{"worker", number_}, {"down_ms", down_ms}});
            }
            ever_connected_ = ever_connected_ || now;
            was_connected_ = now;
            watch_broker();
        });
    }

    std::string name_of(client_ptr const& c) const {
        if (!c) return "server";
        auto it = numbers_.find(c.get());
        if (it == numbers_.end()) return c->id().empty() ? std::string("client") : "client (" + c->id() + ")";
        std::string name = "client #" + std::to_string(it->second.number);
        if (!it->second.id.empty()) name += " (" + it->second.id + ")";
        return name;
    }

    std::string open_count() const {
        return std::to_string(shared_.limit->open.load(std::memory_order_relaxed)) + " open";
    }

    void handle_connections() {
        server_.on_connection([this](client_ptr const& c) {
            shared_.limit->open.fetch_add(1, std::memory_order_relaxed);
            numbers_[c.get()] = known{shared_.next_number.fetch_add(1, std::memory_order_relaxed) + 1, {}};
            if (!log().enabled()) return;
            std::string from = "?", path;
            if constexpr (std::is_same_v<Transport, mesa::transport::asio_plain> ||
                          std::is_same_v<Transport, mesa::transport::asio_tls>) {
                // It keeps no request strings: the path is the one served.
                from = c->connection()->remote_endpoint();
                path = server_.config().path.value_or("*");
            } else {
                try {
                    from = c->connection()->get_remote_endpoint();
                } catch (...) {
                }
                path = c->connection()->get_resource();
            }
            auto fields = fields_of(c);
            fields["from"] = from;
            fields["path"] = path;
            fields["open"] = shared_.limit->open.load(std::memory_order_relaxed);
            log().client(log_level::info, "connected",
                         name_of(c) + " connected from " + from + " to " + path + " (" + open_count() + ")",
                         std::move(fields));
        });
        server_.on_disconnection([this](client_ptr const& c, std::uint16_t code, std::string const& reason) {
            shared_.limit->open.fetch_sub(1, std::memory_order_relaxed);
            shared_.counters->closed(code);
            if (log().enabled()) {
                auto fields = fields_of(c);
                fields["code"] = code;
                if (!reason.empty()) fields["reason"] = reason;
                fields["open"] = shared_.limit->open.load(std::memory_order_relaxed);
                log().client(log_level::info, "disconnected",
                             name_of(c) + " disconnected: " + std::to_string(code) +
                                 (reason.empty() ? "" : " " + reason) + " (" + open_count() + ")",
                             std::move(fields));
            }
            numbers_.erase(c.get());
        });
        server_.on_error([this](typename server_t::error const& e) {
            auto fields = fields_of(e.client);
            fields["error"] = e.what;
            log().client(log_level::warning, "error", "error: " + name_of(e.client) + ": " + e.what, std::move(fields));
        });
        server_.on_log([this](mesa::transport::log_level level, std::string const& text) {
            // Warnings are websocketpp's chatter (e.g. every permessage-deflate offer refused).
            // "Operation aborted" is the listener closing at shutdown.
            if (level != mesa::transport::log_level::error) return;
            if (text.find("Operation aborted") != std::string::npos)
                log().debug("transport", "transport: " + text);
            else
                log().error("transport", "transport: " + text);
        });
    }

    void handle_authentication() {
        server_.template feature<mesa::authentication>().on_authenticate(
            [this](client_ptr const& c, mesa::json::object const& credentials, mesa::authentication::done done) {
                auto const* token = credentials.if_contains("token");
                if (!token || !token->is_string()) return done.fail("op 2 without a string \"token\"");
                auto const& key = shared_.cfg.ws_key;
                if (!key) return done.fail("WS_KEY is not set: no token can be verified");
                auto verified = verify_jwt(token->get_string(), *key, unix_now());
                if (!verified) return done.fail(verified.error());
                if (log().enabled()) {
                    auto fields = fields_of(c);
                    fields["id"] = verified.id();
                    log().client(log_level::info, "authenticated", name_of(c) + " authenticated as " + verified.id(),
                                 std::move(fields));
                }
                std::string id = verified.id();
                if (auto it = numbers_.find(c.get()); it != numbers_.end()) it->second.id = id;
                if (!verified.exp()) return done.succeed(id, mesa::json::object{{"id", id}});
                // The session ends with the token, AUTH_EXPIRY_GRACE later, unless refreshed.
                using namespace std::chrono;
                auto const expires_at =
                    system_clock::time_point(duration_cast<system_clock::duration>(duration<double>(*verified.exp()))) +
                    milliseconds(shared_.cfg.auth_expiry_grace_ms);
                done.succeed(id, mesa::json::object{{"id", id}}, expires_at);
            });
    }

    /// Stores this instance's numbers where every instance's /metrics reads them.
    void publish() {
        metrics m;
        auto const& s = server_.stats();
        m.connections_open = server_.clients().size();
        m.authenticated_clients = server_.identified_count();
        m.connections_accepted = s.connections_accepted;
        m.messages_received = s.messages_received;
        m.messages_sent = s.messages_sent;
        m.bytes_received = s.bytes_received;
        m.bytes_sent = s.bytes_sent;
        m.sync_stored = server_.template feature<mesa::sync>().stored();
        m.sync_redelivered = server_.template feature<mesa::sync>().redelivered();
        m.broker_connected = server_.broker().connected();
        shared_.published[number_].store(m);
    }

    shared_state& shared_;
    std::size_t number_;
    asio::io_context ioc_{1};  // run by one thread only
    server_t server_;
    http_api api_;
    asio::steady_timer flush_timer_{ioc_};
    asio::steady_timer broker_timer_{ioc_};
    bool was_connected_ = true;
    bool ever_connected_ = false;
    std::unordered_map<void const*, known> numbers_;
};

/// Runs the gateway until SIGTERM/SIGINT; returns the process exit code.
/// `broker_description` names the broker in the start-up line.
template <class Transport, class Broker>
int run_gateway(config const& cfg, typename Broker::options broker_options, std::string const& broker_name,
                std::string const& broker_description) {
    using instance_t = instance<Transport, Broker>;
    if constexpr (std::is_same_v<Broker, mesa::broker::memory>) {
        // One hub: the instances form one cluster, as gateways on one Redis do.
        if (!broker_options.cluster) broker_options.cluster = std::make_shared<mesa::broker::memory::hub>();
    }

    shared_state shared(cfg);
    // Instance 0 binds first, so that MESA_PORT=0 gives the others its port.
    std::vector<std::unique_ptr<instance_t>> instances;
    for (std::size_t i = 0; i < cfg.threads; ++i) {
        auto opts = server_options<Transport, Broker>(cfg, broker_options, shared.limit, shared.counters);
        if (cfg.threads > 1) opts.group = shared.group;
        opts.upgrade_limit = shared.upgrade_limit;  // one pace for the whole gateway
        if (i > 0) opts.port = instances.front()->port();
        try {
            instances.push_back(std::make_unique<instance_t>(shared, i, std::move(opts), broker_name));
        } catch (std::exception const& e) {
            shared.log.error("start_failed", std::string("cannot create the server: ") + e.what());
            return 1;
        }
        try {
            instances.back()->start();
        } catch (std::exception const& e) {
            shared.log.error("start_failed", std::string("cannot start: ") + e.what() + tls_variable_of(e.what()));
            return 1;
        }
    }

    // The admin listener runs on instance 0's thread.
    std::unique_ptr<admin_listener> admin;
    if (cfg.admin_port) {
        admin = std::make_unique<admin_listener>(
            instances.front()->context(), cfg.admin_host, *cfg.admin_port,
            [&first = *instances.front()](mesa::http_request const& req) { return first.operations(req); });
        try {
            admin->start();
        } catch (std::exception const& e) {
            shared.log.error("start_failed", "cannot start the admin listener on " + cfg.admin_host + ":" +
                                                 std::to_string(*cfg.admin_port) + ": " + e.what() +
                                                 " (MESA_ADMIN_HOST, MESA_ADMIN_PORT)");
            return 1;
        }
    }

    // The signal is awaited by instance 0 alone, which then stops every
    // instance on its own thread, after MESA_SHUTDOWN_DELAY during which
    // /ready answers 503 so that load balancers stop sending new clients.
    auto& first = *instances.front();
    asio::steady_timer delay(first.context());
    std::optional<asio::signal_set> again;
    mesa::graceful_shutdown shutdown{
        first.context(),
        [&](int signal, mesa::graceful_shutdown::proceed_fn proceed) {
            shared.stopping.store(true);
            if (auto ec = notify("STOPPING=1"))
                shared.log.warning("notify", "cannot notify the service manager: " + ec.message());
            char const* name = signal == SIGTERM ? "SIGTERM" : "SIGINT";
            shared.log.info(
                "stopping",
                std::string("received ") + name + ": closing " + std::to_string(shared.limit->open.load()) +
                    " connection(s) with 1001" +
                    (cfg.shutdown_delay_ms ? " in " + std::to_string(cfg.shutdown_delay_ms) + " ms" : ""),
                {{"signal", name}, {"open", shared.limit->open.load()}, {"delay_ms", cfg.shutdown_delay_ms}});
            // A second signal ends the delay (the first is this one: a set
            // made now does not see it).
            again.emplace(first.context(), SIGINT, SIGTERM);
            again->async_wait([&](std::error_code ec, int) {
                if (!ec) delay.cancel();
            });
            delay.expires_after(std::chrono::milliseconds(cfg.shutdown_delay_ms));
            delay.async_wait([&, proceed = std::move(proceed)](std::error_code) {
                if (again) again->cancel();
                if (admin) admin->stop();
                for (std::size_t i = 1; i < instances.size(); ++i) instances[i]->shut_down();
                proceed();
            });
        },
        flush_time};
    shutdown.add(first.server());

    // Always written: tests and operators read the port from it.
    boost::json::object fields{{"port", first.port()},   {"path", cfg.path ? *cfg.path : std::string("*")},
                               {"broker", broker_name},  {"scheme", Transport::scheme},
                               {"threads", cfg.threads}, {"version", MESA_VERSION_STRING}};
    if (admin) fields["admin_port"] = admin->port();
    shared.log.always(
        "listening",
        "listening on port " + std::to_string(first.port()) + ", path " +
            (cfg.path ? *cfg.path : std::string("* (every path)")) + ", broker " + broker_description +
            (cfg.namespace_name.empty() ? "" : ", namespace " + cfg.namespace_name) + ", scheme " + Transport::scheme +
            (cfg.tls_ca ? " (client certificates required)" : "") + ", " + std::to_string(cfg.threads) +
            (cfg.threads == 1 ? " thread" : " threads") +
            (admin ? ", admin on " + cfg.admin_host + ":" + std::to_string(admin->port()) : std::string()),
        std::move(fields));
    if (!cfg.ws_key) shared.log.warning("configuration", "warning: WS_KEY is not set: every authentication will fail");
    if (!cfg.api_key)
        shared.log.warning("configuration", "warning: MESA_API_KEY is not set: POST /dispatch accepts anyone");
    if (auto ec = notify("READY=1")) shared.log.warning("notify", "cannot notify the service manager: " + ec.message());

    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < instances.size(); ++i) threads.emplace_back([&inst = *instances[i]] { inst.run(); });
    first.run();
    for (auto& t : threads) t.join();
    shared.log.info("stopped", "stopped");
    return 0;
}

}  // namespace gateway
