#pragma once
// One server instance's part in the cluster's exact presence (see
// broker/requirements.hpp): it registers the instance with its sockets,
// renews its liveness, sends every change of its connections and ids, reaps
// instances whose liveness expired, and registers again (with everything it
// holds) whenever the broker says it was fenced out or came back from an
// outage.
//
// Reaping is safe against pauses and failovers: a reaper reaps only after its
// own broker connection has been up, without a break, for longer than the
// time to live (so it renewed its own liveness first), and a reaped instance's
// late changes are refused by its stale epoch; it then re-registers.
//
// Thread-safety: belongs to the thread of its io_context, as its server.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <mesa/keys.hpp>

namespace mesa::detail {

template <class Broker>
class instance_presence {
public:
    using socket_counts = std::vector<std::pair<std::string, std::int64_t>>;
    struct events {
        /// What this instance holds now: its open connections and sockets per id.
        std::function<std::pair<std::int64_t, socket_counts>()> snapshot;
        /// Registered again after being fenced out or after an outage: what
        /// happened meanwhile (backlogs of local ids) may need attention.
        std::function<void()> on_registered_again;
        std::function<void(std::string const&)> on_error;
    };

    instance_presence(asio::io_context& ioc, Broker& broker, mesa::keys const& keys, std::string instance,
                      std::chrono::milliseconds ttl, events ev)
        : broker_(&broker),
          keys_(&keys),
          instance_(std::move(instance)),
          ttl_(ttl),
          events_(std::move(ev)),
          timer_(ioc) {}

    ~instance_presence() { *alive_ = false; }

    void start() {
        register_now();
        tick();
    }

    /// Withdraws the instance (its sockets are closing); later changes are not sent.
    void stop() {
        stopped_ = true;
        timer_.cancel();
        if (epoch_ > 0) broker_->presence_withdraw(*keys_, instance_, epoch_, {});
        epoch_ = 0;
    }

    /// The broker came back after an outage: it may have lost or kept our state.
    void restored() {
        if (!stopped_) register_now();
    }

    /// One change: `connections` opened (+) or closed (-), and `id`'s sockets
    /// here. Changes of the connection count alone are added up and sent
    /// once per turn of the io_context: a burst of handshakes costs one
    /// broker call, not one each.
    void change(std::int64_t connections, std::string const& id, std::int64_t sockets) {
        if (stopped_) return;
        if (!id.empty() || sockets != 0) return send(connections + std::exchange(pending_connections_, 0), id, sockets);
        if (connections == 0) return;
        pending_connections_ += connections;
        if (flush_posted_) return;
        flush_posted_ = true;
        asio::post(timer_.get_executor(), [this, alive = alive_] {
            if (!*alive) return;
            flush_posted_ = false;
            if (auto const n = std::exchange(pending_connections_, 0); n != 0) send(n, {}, 0);
        });
    }

    /// One more socket of `id`, unless the id already holds `max_sockets` in
    /// the cluster: `done(admitted)`, on the io_context's thread. The count
    /// and the check are one atomic step at the broker. While this instance
    /// is not registered (the broker is unreachable, or fenced), or when the
    /// broker fails, the socket is admitted and counted by the next
    /// registration: the cap holds whenever the broker can check it.
    void admit(std::string const& id, std::int64_t max_sockets, std::function<void(bool)> done) {
        if (stopped_ || registering_ || epoch_ <= 0) {
            change(0, id, 1);
            return done(true);
        }
        broker_->presence_admit(
            *keys_, instance_, epoch_, id, max_sockets,
            [this, alive = alive_, epoch = epoch_, done = std::move(done)](std::error_code ec, std::int64_t result) {
                if (!*alive) return;
                if (stopped_ || epoch != epoch_) return done(true);
                if (ec) {
                    error("presence admission failed (" + ec.message() + ")");
                    epoch_ = 0;  // the next registration counts the socket
                    return done(true);
                }
                if (result == -2) return done(false);
                if (result < 0) fenced();  // registering again counts the socket
                done(true);
            });
    }

    std::int64_t epoch() const noexcept { return epoch_; }

private:
    void send(std::int64_t connections, std::string const& id, std::int64_t sockets) {
        if (stopped_) return;
        if (registering_ || epoch_ <= 0) {
            // The registration in flight (or the next one) carries the current state.
            stale_ = true;
            return;
        }
        broker_->presence_change(*keys_, instance_, epoch_, connections, id, sockets,
                                 [this, alive = alive_, epoch = epoch_](std::error_code ec, std::int64_t result) {
                                     if (!*alive || stopped_ || epoch != epoch_) return;
                                     if (ec) {
                                         // Not applied: the next registration replaces our state whole.
                                         error("presence update failed (" + ec.message() + ")");
                                         epoch_ = 0;
                                         return;
                                     }
                                     if (result < 0) fenced();
                                 });
    }

    void register_now() {
        if (registering_) {
            stale_ = true;
            return;
        }
        registering_ = true;
        stale_ = false;
        pending_connections_ = 0;  // the snapshot counts them
        auto [connections, ids] = events_.snapshot();
        broker_->presence_register(*keys_, instance_, ttl_, connections, ids,
                                   [this, alive = alive_](std::error_code ec, std::int64_t epoch) {
                                       if (!*alive || stopped_) return;
                                       registering_ = false;
                                       if (ec) {
                                           error("cannot register this instance (" + ec.message() + "); retrying");
                                           epoch_ = 0;
                                           return;  // the next tick or the broker's recovery tries again
                                       }
                                       bool const again = registered_once_;
                                       registered_once_ = true;
                                       epoch_ = epoch;
                                       if (stale_) return register_now();
                                       if (again && events_.on_registered_again) events_.on_registered_again();
                                   });
    }

    void fenced() {
        error(
            "this instance was reaped by another (a pause or a lost connection longer than the time to live); "
            "registering its sockets again");
        epoch_ = 0;
        register_now();
    }

    // Every third of the time to live: renew (or register), then reap others.
    void tick() {
        auto const now = std::chrono::steady_clock::now();
        if (!broker_->connected())
            up_since_.reset();
        else if (!up_since_)
            up_since_ = now;
        if (epoch_ <= 0 && !registering_) {
            register_now();
        } else if (epoch_ > 0) {
            broker_->presence_renew(*keys_, instance_, epoch_, ttl_,
                                    [this, alive = alive_, epoch = epoch_](std::error_code ec, std::int64_t result) {
                                        if (!*alive || stopped_ || epoch != epoch_) return;
                                        if (!ec && result < 0) fenced();
                                    });
            if (up_since_ && now - *up_since_ > ttl_ + ttl_ / 3) reap();
        }
        timer_.expires_after(ttl_ / 3);
        timer_.async_wait([this, alive = alive_](std::error_code ec) {
            if (!ec && *alive && !stopped_) tick();
        });
    }

    void reap() {
        broker_->presence_reap(*keys_, [this, alive = alive_](std::error_code ec, std::vector<std::string> reaped) {
            if (!*alive || ec) return;
            for (auto const& instance : reaped)
                if (instance != instance_) error("reaped instance " + instance + ": its liveness expired");
        });
    }

    void error(std::string const& what) {
        if (events_.on_error) events_.on_error("presence: " + what);
    }

    Broker* broker_;
    mesa::keys const* keys_;
    std::string instance_;
    std::chrono::milliseconds ttl_;
    events events_;
    asio::steady_timer timer_;
    std::int64_t epoch_ = 0;  // 0: not registered
    bool registering_ = false;
    bool stale_ = false;  // changed while the registration was in flight
    bool registered_once_ = false;
    std::int64_t pending_connections_ = 0;  // connection count changes not sent yet
    bool flush_posted_ = false;
    bool stopped_ = false;
    std::optional<std::chrono::steady_clock::time_point> up_since_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mesa::detail
