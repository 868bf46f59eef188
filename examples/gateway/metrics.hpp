#pragma once
// The gateway's numbers, and their Prometheus text exposition (format 0.0.4).
//
//   gateway::metrics m;  m.connections_open = 3;
//   std::string body = gateway::render_prometheus(m);
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace gateway {

/// Close codes counted as themselves by mesa_closes_total; any other code a
/// client sends is counted as "other", so the number of series stays bounded.
inline bool known_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1011) || (code >= 4000 && code <= 4005);
}

/// HTTP statuses counted as themselves by mesa_refused_upgrades_total (others: "other").
inline constexpr int refusal_statuses[] = {400, 403, 404, 405, 426, 503};

/// HTTP statuses counted as themselves by mesa_refused_http_requests_total:
/// plain HTTP requests (or bytes that are none, such as a TLS ClientHello)
/// the transport refused itself (others: "other").
inline constexpr int http_refusal_statuses[] = {400, 408, 413, 431, 501};

/// Upper bounds (seconds) of the buckets of mesa_dispatch_broker_seconds.
inline constexpr double latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
inline constexpr std::size_t latency_bucket_count = sizeof latency_buckets / sizeof latency_buckets[0];

/// Counters the whole gateway shares (any thread, relaxed atomics): closes by
/// code, refused upgrades by status, broker reconnections, and the time the
/// broker took to accept POST /dispatch messages. None is on the path of a message.
class shared_counters {
public:
    void closed(std::uint16_t code) noexcept {
        auto& c = known_close_code(code) ? (code < 4000 ? closes_[code - 1000] : closes_[12 + code - 4000]) : other_;
        c.fetch_add(1, std::memory_order_relaxed);
    }

    void refused(int status) noexcept {
        for (std::size_t i = 0; i < std::size(refusal_statuses); ++i) {
            if (refusal_statuses[i] == status) {
                refused_[i].fetch_add(1, std::memory_order_relaxed);
                return;
            }
        }
        refused_other_.fetch_add(1, std::memory_order_relaxed);
    }

    void http_refused(int status) noexcept {
        for (std::size_t i = 0; i < std::size(http_refusal_statuses); ++i) {
            if (http_refusal_statuses[i] == status) {
                http_refused_[i].fetch_add(1, std::memory_order_relaxed);
                return;
            }
        }
        http_refused_other_.fetch_add(1, std::memory_order_relaxed);
    }

    void broker_reconnected() noexcept { reconnects_.fetch_add(1, std::memory_order_relaxed); }

    void dispatch_latency(std::chrono::steady_clock::duration d) noexcept {
        auto const us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
        double const seconds = static_cast<double>(us) / 1e6;
        std::size_t i = 0;
        while (i < latency_bucket_count && seconds > latency_buckets[i]) ++i;
        latency_[i].fetch_add(1, std::memory_order_relaxed);
        latency_sum_us_.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
    }

    /// Fills the shared part of `m`.
    void read(struct metrics& m) const noexcept;

private:
    using counter = std::atomic<std::uint64_t>;
    std::array<counter, 18> closes_{};  // 1000-1011, then 4000-4005
    counter other_{0};
    std::array<counter, std::size(refusal_statuses)> refused_{};
    counter refused_other_{0};
    std::array<counter, std::size(http_refusal_statuses)> http_refused_{};
    counter http_refused_other_{0};
    counter reconnects_{0};
    std::array<counter, latency_bucket_count + 1> latency_{};  // the last: above every bound
    counter latency_sum_us_{0};
};

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
    /// Open connections of each server instance (MESA_THREADS), by worker number.
    std::vector<std::uint64_t> instance_connections_open;
    /// Closes by code ("1000" ... "4005", "other"), only those that happened.
    std::vector<std::pair<std::string, std::uint64_t>> closes;
    /// Refused upgrades by HTTP status ("404", ..., "other"), only those that happened.
    std::vector<std::pair<std::string, std::uint64_t>> refused_upgrades;
    /// Plain HTTP requests the transport refused, by HTTP status ("413", ..., "other"), only those that happened.
    std::vector<std::pair<std::string, std::uint64_t>> refused_http_requests;
    std::uint64_t broker_reconnects = 0;
    /// Per bucket of latency_buckets, then above them all (not cumulative).
    std::array<std::uint64_t, latency_bucket_count + 1> dispatch_latency{};
    double dispatch_latency_sum_seconds = 0;
    /// Version of the build (mesa_build_info).
    std::string version;

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

inline void shared_counters::read(metrics& m) const noexcept {
    auto get = [](counter const& c) { return c.load(std::memory_order_relaxed); };
    m.closes.clear();
    for (std::size_t i = 0; i < closes_.size(); ++i) {
        if (auto n = get(closes_[i])) m.closes.emplace_back(std::to_string(i < 12 ? 1000 + i : 4000 + i - 12), n);
    }
    if (auto n = get(other_)) m.closes.emplace_back("other", n);
    m.refused_upgrades.clear();
    for (std::size_t i = 0; i < refused_.size(); ++i) {
        if (auto n = get(refused_[i])) m.refused_upgrades.emplace_back(std::to_string(refusal_statuses[i]), n);
    }
    if (auto n = get(refused_other_)) m.refused_upgrades.emplace_back("other", n);
    m.refused_http_requests.clear();
    for (std::size_t i = 0; i < http_refused_.size(); ++i) {
        if (auto n = get(http_refused_[i]))
            m.refused_http_requests.emplace_back(std::to_string(http_refusal_statuses[i]), n);
    }
    if (auto n = get(http_refused_other_)) m.refused_http_requests.emplace_back("other", n);
    m.broker_reconnects = get(reconnects_);
    for (std::size_t i = 0; i < latency_.size(); ++i) m.dispatch_latency[i] = get(latency_[i]);
    m.dispatch_latency_sum_seconds = static_cast<double>(get(latency_sum_us_)) / 1e6;
}

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

/// Prometheus names (since 0.2; the README lists the renames): units last,
/// plural (`_bytes_total`, `_messages_total`), no `instance` label (Prometheus
/// sets it to the scrape target), per-instance series labelled `worker`.
inline std::string render_prometheus(metrics const& m) {
    std::string out;
    auto head = [&](char const* name, char const* type, char const* help) {
        out += "# HELP ";
        out += name;
        out += ' ';
        out += help;
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += type;
        out += '\n';
    };
    auto add = [&](char const* name, char const* type, char const* help, std::uint64_t value) {
        head(name, type, help);
        out += name;
        out += ' ';
        out += std::to_string(value);
        out += '\n';
    };
    auto labelled = [&](char const* name, char const* label,
                        std::vector<std::pair<std::string, std::uint64_t>> const& v) {
        for (auto const& [key, n] : v)
            out += std::string(name) + '{' + label + "=\"" + key + "\"} " + std::to_string(n) + '\n';
    };
    head("mesa_build_info", "gauge", "Always 1; the version of the gateway in its label.");
    out += "mesa_build_info{version=\"" + m.version + "\"} 1\n";
    add("mesa_open_connections", "gauge", "Open WebSocket connections.", m.connections_open);
    add("mesa_authenticated_clients", "gauge", "Open connections that have authenticated.", m.authenticated_clients);
    add("mesa_accepted_connections_total", "counter", "WebSocket connections accepted.", m.connections_accepted);
    add("mesa_received_messages_total", "counter", "Frames received from clients.", m.messages_received);
    add("mesa_sent_messages_total", "counter", "Frames sent to clients (hello included).", m.messages_sent);
    add("mesa_received_bytes_total", "counter", "Payload bytes received from clients.", m.bytes_received);
    add("mesa_sent_bytes_total", "counter", "Payload bytes sent to clients.", m.bytes_sent);
    add("mesa_http_dispatches_total", "counter", "Messages accepted by POST /dispatch.", m.http_dispatches);
    add("mesa_sync_stored_messages_total", "counter", "Messages stored for offline ids (sync).", m.sync_stored);
    add("mesa_sync_redelivered_messages_total", "counter", "Stored messages redelivered (sync).", m.sync_redelivered);
    add("mesa_broker_connected", "gauge", "1 when the broker (Redis) is reachable, else 0.",
        m.broker_connected ? 1 : 0);
    add("mesa_broker_reconnects_total", "counter",
        "Broker outages that ended (an instance's broker seen unreachable, then reachable again).",
        m.broker_reconnects);
    head("mesa_closes_total", "counter",
         "WebSocket connections closed, by close code (codes outside 1000-1011 and 4000-4005: other).");
    labelled("mesa_closes_total", "code", m.closes);
    head("mesa_refused_upgrades_total", "counter", "WebSocket upgrades refused, by HTTP status.");
    labelled("mesa_refused_upgrades_total", "status", m.refused_upgrades);
    head("mesa_refused_http_requests_total", "counter",
         "Plain HTTP requests (or bytes that are none) the transport refused itself, by HTTP status.");
    labelled("mesa_refused_http_requests_total", "status", m.refused_http_requests);
    head("mesa_dispatch_broker_seconds", "histogram",
         "Time from a valid POST /dispatch to the broker taking the message (or failing to).");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= latency_bucket_count; ++i) {
        cumulative += m.dispatch_latency[i];
        char bound[32];
        if (i < latency_bucket_count)
            std::snprintf(bound, sizeof bound, "%g", latency_buckets[i]);
        else
            std::snprintf(bound, sizeof bound, "+Inf");
        out += "mesa_dispatch_broker_seconds_bucket{le=\"" + std::string(bound) + "\"} " + std::to_string(cumulative) +
               '\n';
    }
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.6f", m.dispatch_latency_sum_seconds);
    out += "mesa_dispatch_broker_seconds_sum " + std::string(sum) + '\n';
    out += "mesa_dispatch_broker_seconds_count " + std::to_string(cumulative) + '\n';
    head("mesa_worker_open_connections", "gauge",
         "Open WebSocket connections of each server instance (MESA_THREADS), by worker number.");
    for (std::size_t i = 0; i < m.instance_connections_open.size(); ++i) {
        out += "mesa_worker_open_connections{worker=\"" + std::to_string(i) + "\"} " +
               std::to_string(m.instance_connections_open[i]) + '\n';
    }
    return out;
}

}  // namespace gateway
