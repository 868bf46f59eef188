#pragma once
// Graceful shutdown on SIGINT/SIGTERM (the reference's death handler and
// `beforeExit`): the application's hook runs first and says when to go on;
// then every server stops (clients closed with 1001, their ids removed from
// the connected set, the cluster's count decreased) and, once the brokers had
// a moment to flush, `done` runs (by default it stops the io_context).
//
//   mesa::graceful_shutdown shutdown{ioc, [&](int signal, auto proceed) { flush_logs(); proceed(); }};
//   shutdown.add(server);
//
// Thread-safety: construct and add on the io_context's thread.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <vector>

namespace mesa {

class graceful_shutdown {
public:
    using proceed_fn = std::function<void()>;
    /// Runs first with the signal number; call `proceed` (now or later) to go on.
    using before_exit_fn = std::function<void(int signal, proceed_fn proceed)>;

    explicit graceful_shutdown(asio::io_context& ioc, before_exit_fn before_exit = {},
                               std::chrono::milliseconds flush_time = std::chrono::milliseconds(200))
        : signals_(ioc, SIGINT, SIGTERM),
          timer_(ioc),
          before_exit_(std::move(before_exit)),
          flush_time_(flush_time),
          done_([&ioc] { ioc.stop(); }) {
        signals_.async_wait([this](std::error_code ec, int signal) {
            if (ec) return;
            signal_ = signal;
            if (before_exit_)
                before_exit_(signal, [this] { shut_down(); });
            else
                shut_down();
        });
    }

    /// Stops `server` on shutdown (any type with stop()).
    template <class Server>
    void add(Server& server) {
        stops_.push_back([&server] { server.stop(); });
    }

    /// What to do once everything stopped (default: stop the io_context).
    void on_done(std::function<void()> done) { done_ = std::move(done); }

    /// The signal received, 0 before one arrived.
    int signal() const noexcept { return signal_; }

    /// Shuts down now, as if a signal had arrived.
    void shut_down() {
        if (shutting_down_) return;
        shutting_down_ = true;
        signals_.cancel();
        for (auto& stop : stops_) stop();
        // Close frames and broker commands are queued; give them time to leave.
        timer_.expires_after(flush_time_);
        timer_.async_wait([this](std::error_code) { done_(); });
    }

private:
    asio::signal_set signals_;
    asio::steady_timer timer_;
    before_exit_fn before_exit_;
    std::chrono::milliseconds flush_time_;
    std::function<void()> done_;
    std::vector<std::function<void()>> stops_;
    int signal_ = 0;
    bool shutting_down_ = false;
};

}  // namespace mesa
