#pragma once
// The gateway itself: a Mesa server with every feature, switched on or off
// by the configuration, JWT authentication, PING/PONG, the HTTP API and a
// graceful shutdown. Transport and broker are template parameters:
// websocketpp_plain (ws://) or websocketpp_tls (wss://, TLS_CERT/TLS_KEY);
// broker::memory for a single node, broker::redis to join a cluster.
//
//   return gateway::run_gateway<mesa::transport::websocketpp_plain, mesa::broker::memory>(cfg, {}, "memory", "memory");
#include <mesa/mesa.hpp>
#include <mesa/transport/websocketpp_tls.hpp>

#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "config.hpp"
#include "http_api.hpp"
#include "jwt.hpp"
#include "log.hpp"
#include "metrics.hpp"

namespace gateway {

template <class Transport, class Broker>
using server_type = mesa::server<Transport, Broker, mesa::heartbeat, mesa::reconnect,
                                 mesa::authentication, mesa::sync, mesa::version_rule, mesa::message_store,
                                 mesa::portals, mesa::rate_limit>;

/// The server options `cfg` describes.
template <class Transport, class Broker>
typename server_type<Transport, Broker>::options server_options(config const& cfg, typename Broker::options broker) {
    using std::chrono::milliseconds;
    typename server_type<Transport, Broker>::options o;
    o.port = cfg.port;
    o.path = cfg.path;
    o.namespace_name = cfg.namespace_name;
    o.broker = std::move(broker);
    o.max_backlog_bytes = cfg.max_backlog_bytes;
    o.max_connections = cfg.max_connections;
    o.allowed_origins = cfg.allowed_origins;
    if constexpr (std::is_same_v<Transport, mesa::transport::websocketpp_tls>) {
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

    o.template feature<mesa::version_rule>().enabled = cfg.enforce_equal_versions;
    o.template feature<mesa::message_store>().enabled = cfg.store_messages;

    auto& portals = o.template feature<mesa::portals>();
    portals.enabled = cfg.portals_enabled;
    portals.distribute_load = cfg.portal_distribute_load;

    auto& limit = o.template feature<mesa::rate_limit>();
    limit.enabled = cfg.max_messages_per_second > 0;
    limit.messages_per_second = cfg.max_messages_per_second;
    limit.burst = cfg.message_burst;
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

/// Runs the gateway until SIGTERM/SIGINT; returns the process exit code.
/// `broker_description` names the broker in the start-up line.
template <class Transport, class Broker>
int run_gateway(config const& cfg, typename Broker::options broker_options, std::string const& broker_name,
                std::string const& broker_description) {
    using server_t = server_type<Transport, Broker>;
    using client_ptr = typename server_t::client_ptr;
    logger log(cfg.enable_logging);

    // Connection numbers make the log lines of one connection easy to follow.
    // The id is kept here too: the server clears a client's id before
    // on_disconnection runs.
    struct known {
        std::uint64_t number;
        std::string id;
    };
    std::unordered_map<void const*, known> numbers;
    std::uint64_t next_number = 0;

    asio::io_context ioc;
    std::unique_ptr<server_t> owner;
    try {
        owner = std::make_unique<server_t>(ioc, server_options<Transport, Broker>(cfg, std::move(broker_options)));
    } catch (std::exception const& e) {
        logger::write(std::string("cannot create the server: ") + e.what());
        return 1;
    }
    server_t& server = *owner;

    auto name_of = [&](client_ptr const& c) {
        if (!c) return std::string("server");
        auto it = numbers.find(c.get());
        if (it == numbers.end()) return c->id().empty() ? std::string("client") : "client (" + c->id() + ")";
        std::string name = "client #" + std::to_string(it->second.number);
        if (!it->second.id.empty()) name += " (" + it->second.id + ")";
        return name;
    };

    server.on_connection([&](client_ptr const& c) {
        numbers[c.get()] = known{++next_number, {}};
        if (!log.enabled()) return;
        std::string from;
        try {
            from = c->connection()->get_remote_endpoint();
        } catch (...) {
            from = "?";
        }
        log(name_of(c) + " connected from " + from + " to " + c->connection()->get_resource() + " (" +
            std::to_string(server.clients().size()) + " open)");
    });
    server.on_disconnection([&](client_ptr const& c, std::uint16_t code, std::string const& reason) {
        log(name_of(c) + " disconnected: " + std::to_string(code) + (reason.empty() ? "" : " " + reason) + " (" +
            std::to_string(server.clients().size()) + " open)");
        numbers.erase(c.get());
    });
    server.on_error([&](typename server_t::error const& e) { log("error: " + name_of(e.client) + ": " + e.what); });
    server.on_log([&](mesa::transport::log_level level, std::string const& text) {
        // Warnings are websocketpp's chatter (e.g. every permessage-deflate offer refused).
        if (level == mesa::transport::log_level::error) log("transport: " + text);
    });

    server.template feature<mesa::authentication>().on_authenticate(
        [&](client_ptr const& c, mesa::json::object const& credentials, mesa::authentication::done done) {
            auto const* token = credentials.if_contains("token");
            if (!token || !token->is_string()) return done.fail("op 2 without a string \"token\"");
            if (!cfg.ws_key) return done.fail("WS_KEY is not set: no token can be verified");
            auto verified = verify_jwt(token->get_string(), *cfg.ws_key, unix_now());
            if (!verified) return done.fail(verified.error());
            log(name_of(c) + " authenticated as " + verified.id());
            std::string id = verified.id();
            if (auto it = numbers.find(c.get()); it != numbers.end()) it->second.id = id;
            done.succeed(id, mesa::json::object{{"id", id}});
        });

    server.on_message([](client_ptr const& c, mesa::message const& m) {
        if (m.t && *m.t == "PING") c->send(mesa::message("PONG", m.d));
    });

    http_api api(
        http_api::hooks{
            [&](mesa::envelope const& e) { server.send(e.msg, e.recipients, e.excluding); },
            [&] {
                metrics m;
                auto const& s = server.stats();
                m.connections_open = server.clients().size();
                m.authenticated_clients = server.identified_count();
                m.connections_accepted = s.connections_accepted;
                m.messages_received = s.messages_received;
                m.messages_sent = s.messages_sent;
                m.bytes_received = s.bytes_received;
                m.bytes_sent = s.bytes_sent;
                m.sync_stored = server.template feature<mesa::sync>().stored();
                m.sync_redelivered = server.template feature<mesa::sync>().redelivered();
                m.broker_connected = server.broker().connected();
                return m;
            }},
        cfg.api_key, broker_name);
    server.on_http([&](mesa::http_request const& req) {
        auto res = api.handle(req);
        if (log.enabled() && req.target.rfind("/dispatch", 0) == 0)
            log("http " + req.method + " " + req.target + " -> " + std::to_string(res.status));
        return res;
    });

    mesa::graceful_shutdown shutdown{ioc, [&](int signal, mesa::graceful_shutdown::proceed_fn proceed) {
                                         log(std::string("received ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") +
                                             ": closing " + std::to_string(server.clients().size()) +
                                             " connection(s) with 1001");
                                         proceed();
                                     }};
    shutdown.add(server);

    try {
        server.start();
    } catch (std::exception const& e) {
        logger::write(std::string("cannot start: ") + e.what() + tls_variable_of(e.what()));
        return 1;
    }

    // Always printed: tests and operators read the port from it.
    logger::write("listening on port " + std::to_string(server.port()) + ", path " +
                  (cfg.path ? *cfg.path : std::string("* (every path)")) + ", broker " + broker_description +
                  (cfg.namespace_name.empty() ? "" : ", namespace " + cfg.namespace_name) + ", scheme " +
                  Transport::scheme + (cfg.tls_ca ? " (client certificates required)" : ""));
    if (!cfg.ws_key) logger::write("warning: WS_KEY is not set: every authentication will fail");
    if (!cfg.api_key) logger::write("warning: MESA_API_KEY is not set: POST /dispatch accepts anyone");

    ioc.run();
    log("stopped");
    return 0;
}

}  // namespace gateway
