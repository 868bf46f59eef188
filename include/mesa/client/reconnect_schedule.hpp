#pragma once
// When mesa::client reconnects: a pure state machine (no I/O, no clock, no
// randomness of its own), so tests drive it without sockets or sleeps.
//
//   mesa::client_detail::reconnect_schedule s{{std::chrono::seconds(30), 0.2}};
//   s.on_hello(std::chrono::milliseconds(5000));
//   if (auto delay = s.on_close(random01())) arm_timer(*delay);
//
// Rules: reconnect only when an interval is known (the server's
// c_reconnect_interval, else the client's fallback), and never after an
// explicit disconnect() until the next explicit connect(). The n-th
// consecutive failed attempt waits interval * 2^n, capped at max_delay, then
// scaled by a jitter factor in [1 - jitter, 1 + jitter] (and capped again), so
// a restarted server is not hit by all its clients in the same millisecond.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>

namespace mesa::client_detail {

class reconnect_schedule {
public:
    struct options {
        std::chrono::milliseconds max_delay{30000};                  // cap of the backoff
        double jitter = 0.2;                                         // +-20 %: spreads a herd of clients
        std::optional<std::chrono::milliseconds> fallback_interval;  // used when the server advertised none
    };

    reconnect_schedule() = default;
    explicit reconnect_schedule(options o) : options_(o) {}

    /// The hello's c_reconnect_interval (nullopt: the server does not ask
    /// clients to reconnect).
    void on_hello(std::optional<std::chrono::milliseconds> interval) {
        server_interval_ = interval && interval->count() > 0 ? interval : std::nullopt;
    }
    /// An explicit connect(): reconnections are allowed again.
    void on_connect_requested() {
        stopped_ = false;
        failures_ = 0;
    }
    /// An explicit disconnect(): no reconnection until the next connect().
    void on_disconnect_requested() { stopped_ = true; }
    /// The socket opened (the handshake succeeded).
    void on_open() { failures_ = 0; }

    /// The connection closed or an attempt failed. Returns how long to wait
    /// before the next attempt, or nullopt for "do not reconnect".
    /// `random01` is a uniform draw in [0, 1) supplied by the caller.
    std::optional<std::chrono::milliseconds> on_close(double random01) {
        auto const base = interval();
        if (stopped_ || !base) return std::nullopt;
        auto const shift = std::min<unsigned>(failures_, 20);
        ++failures_;
        double delay = static_cast<double>(base->count()) * static_cast<double>(std::uint64_t(1) << shift);
        double const cap = static_cast<double>(options_.max_delay.count());
        delay = std::min(delay, cap);
        double const j = std::clamp(options_.jitter, 0.0, 1.0);
        double const u = std::clamp(random01, 0.0, 1.0);
        delay *= 1.0 - j + 2.0 * j * u;
        delay = std::min(delay, cap);
        return std::chrono::milliseconds(static_cast<std::int64_t>(std::max(delay, 1.0)));
    }

    /// Would a close now be followed by a reconnection?
    bool will_reconnect() const { return !stopped_ && interval().has_value(); }
    bool stopped() const { return stopped_; }
    unsigned failures() const { return failures_; }
    std::optional<std::chrono::milliseconds> interval() const {
        return server_interval_ ? server_interval_ : options_.fallback_interval;
    }

private:
    options options_;
    std::optional<std::chrono::milliseconds> server_interval_;
    unsigned failures_ = 0;
    bool stopped_ = false;
};

}  // namespace mesa::client_detail
