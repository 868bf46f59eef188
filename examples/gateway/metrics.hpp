#pragma once
// The gateway's numbers, and their Prometheus text exposition (format 0.0.4).
//
//   gateway::metrics m;  m.connections_open = 3;
//   std::string body = gateway::render_prometheus(m);
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

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
    /// Open connections of each server instance (MESA_THREADS), by instance number.
    std::vector<std::uint64_t> instance_connections_open;

    /// Adds the numbers of another instance; the broker counts as connected
    /// only when it is for every instance.
    metrics& operator+=(metrics const& o) {
        connections_open += o.connections_open;
        authenticated_clients += o.authenticated_clients;
        connections_accepted += o.connections_accepted;
        messages_received += o.messages_received;
        messages_sent += o.messages_sent;
        bytes_received += o.bytes_received;
        bytes_sent += o.bytes_sent;
        http_dispatches += o.http_dispatches;
        sync_stored += o.sync_stored;
        sync_redelivered += o.sync_redelivered;
        broker_connected = broker_connected && o.broker_connected;
        return *this;
    }
};

/// The numbers of one server instance, stored by the thread that runs it and
/// loaded by whichever instance answers /metrics or /health. Each field is an
/// atomic of its own: a reader may see one store of a refresh and not yet the
/// next, never a torn or racy value.
class published_metrics {
public:
    void store(metrics const& m) noexcept {
        set(connections_open_, m.connections_open);
        set(authenticated_clients_, m.authenticated_clients);
        set(connections_accepted_, m.connections_accepted);
        set(messages_received_, m.messages_received);
        set(messages_sent_, m.messages_sent);
        set(bytes_received_, m.bytes_received);
        set(bytes_sent_, m.bytes_sent);
        set(sync_stored_, m.sync_stored);
        set(sync_redelivered_, m.sync_redelivered);
        broker_connected_.store(m.broker_connected, std::memory_order_relaxed);
    }

    metrics load() const noexcept {
        metrics m;
        m.connections_open = get(connections_open_);
        m.authenticated_clients = get(authenticated_clients_);
        m.connections_accepted = get(connections_accepted_);
        m.messages_received = get(messages_received_);
        m.messages_sent = get(messages_sent_);
        m.bytes_received = get(bytes_received_);
        m.bytes_sent = get(bytes_sent_);
        m.sync_stored = get(sync_stored_);
        m.sync_redelivered = get(sync_redelivered_);
        m.broker_connected = broker_connected_.load(std::memory_order_relaxed);
        return m;
    }

private:
    using counter = std::atomic<std::uint64_t>;
    static void set(counter& c, std::uint64_t v) noexcept { c.store(v, std::memory_order_relaxed); }
    static std::uint64_t get(counter const& c) noexcept { return c.load(std::memory_order_relaxed); }

    counter connections_open_{0}, authenticated_clients_{0}, connections_accepted_{0}, messages_received_{0},
        messages_sent_{0}, bytes_received_{0}, bytes_sent_{0}, sync_stored_{0}, sync_redelivered_{0};
    std::atomic<bool> broker_connected_{true};
};

/// The whole gateway's numbers from those of its instances (by instance
/// number): sums, and the open connections of each instance.
inline metrics total_of(std::vector<published_metrics> const& instances) {
    metrics m;
    for (auto const& p : instances) {
        auto const part = p.load();
        m += part;
        m.instance_connections_open.push_back(part.connections_open);
    }
    return m;
}

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
    add("mesa_broker_connected", "gauge", "1 when the broker (Redis) is reachable, else 0.",
        m.broker_connected ? 1 : 0);
    out +=
        "# HELP mesa_instance_connections_open Open WebSocket connections of each server instance (MESA_THREADS).\n"
        "# TYPE mesa_instance_connections_open gauge\n";
    for (std::size_t i = 0; i < m.instance_connections_open.size(); ++i) {
        out += "mesa_instance_connections_open{instance=\"" + std::to_string(i) + "\"} " +
               std::to_string(m.instance_connections_open[i]) + '\n';
    }
    return out;
}

}  // namespace gateway
