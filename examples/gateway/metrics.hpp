#pragma once
// The gateway's numbers, and their Prometheus text exposition (format 0.0.4).
//
//   gateway::metrics m;  m.connections_open = 3;
//   std::string body = gateway::render_prometheus(m);
#include <cstdint>
#include <string>

namespace gateway {

/// A snapshot of the gateway's state and counters (counters monotonic since start).
struct metrics {
    std::uint64_t connections_open = 0;
    std::uint64_t authenticated_clients = 0;
    std::uint64_t connections_accepted = 0;
    std::uint64_t messages_received = 0;
    std::uint64_t messages_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t http_dispatches = 0;
    std::uint64_t sync_stored = 0;
    std::uint64_t sync_redelivered = 0;
    bool broker_connected = true;
};

inline constexpr char prometheus_content_type[] = "text/plain; version=0.0.4; charset=utf-8";

inline std::string render_prometheus(metrics const& m) {
    std::string out;
    auto add = [&](char const* name, char const* type, char const* help, std::uint64_t value) {
        out += "# HELP ";
        out += name;
        out += ' ';
        out += help;
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += type;
        out += '\n';
        out += name;
        out += ' ';
        out += std::to_string(value);
        out += '\n';
    };
    add("mesa_connections_open", "gauge", "Open WebSocket connections.", m.connections_open);
    add("mesa_authenticated_clients", "gauge", "Open connections that have authenticated.", m.authenticated_clients);
    add("mesa_connections_accepted_total", "counter", "WebSocket connections accepted.", m.connections_accepted);
    add("mesa_messages_received_total", "counter", "Frames received from clients.", m.messages_received);
    add("mesa_messages_sent_total", "counter", "Frames sent to clients (hello included).", m.messages_sent);
    add("mesa_bytes_received_total", "counter", "Payload bytes received from clients.", m.bytes_received);
    add("mesa_bytes_sent_total", "counter", "Payload bytes sent to clients.", m.bytes_sent);
    add("mesa_http_dispatches_total", "counter", "Messages accepted by POST /dispatch.", m.http_dispatches);
    add("mesa_sync_stored_total", "counter", "Messages stored for offline ids (sync).", m.sync_stored);
    add("mesa_sync_redelivered_total", "counter", "Stored messages redelivered (sync).", m.sync_redelivered);
    add("mesa_broker_connected", "gauge", "1 when the broker (Redis) is reachable, else 0.", m.broker_connected ? 1 : 0);
    return out;
}

}  // namespace gateway
