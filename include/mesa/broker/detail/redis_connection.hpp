#pragma once
// One connection to Redis on Asio: connect (TCP or unix socket, TLS when
// settings.tls is set), AUTH and SELECT, pipelined commands whose replies are
// matched first-in first-out, and reconnection with backoff. Replies nobody
// waits for (pub/sub pushes on a subscriber connection) go to on_push.
//
// A managed connection (Redis Sentinel) does not reconnect by itself: its
// owner says where to go (connect_to) and when to give up on the commands
// waiting (refuse); in between, commands wait (bounded). It also checks with
// ROLE that it reached a master.
//
// Every tracked command gets exactly one answer, never inline: its reply, or
// redis_errc::disconnected / queue_full. After stop() nothing is called back.
//
// A Redis that stops answering without closing (SIGSTOP, a partition dropping
// packets) is noticed by command_timeout: once the oldest command awaiting its
// reply has waited that long, the connection is lost as if closed (its
// commands fail with disconnected, it reconnects). One timer per connection,
// armed at the oldest command's deadline. A connection without commands of
// its own (subscriptions: ping_when_idle) PINGs every command_timeout.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>
#include <asio/connect.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <mesa/broker/detail/redis_backoff.hpp>
#include <mesa/broker/detail/redis_error.hpp>
#include <mesa/broker/detail/redis_resp.hpp>
#include <mesa/broker/detail/redis_stream.hpp>
#include <mesa/broker/detail/redis_uri.hpp>

namespace mesa::broker::detail {

/// Receives a command's reply; `reply` is null when `ec` says why there is none.
/// A Redis error reply arrives with redis_errc::server_error and the reply.
using redis_reply_handler = std::function<void(std::error_code ec, redisReply const* reply)>;

struct redis_connection_settings {
    redis_endpoint endpoint;
    std::string name;  // for logs: "commands", "subscriptions"
    std::chrono::milliseconds reconnect_initial{100};
    std::chrono::milliseconds reconnect_max{5000};
    std::chrono::milliseconds connect_timeout{5000};
    /// The oldest command unanswered longer than this: the connection is lost. 0: off.
    std::chrono::milliseconds command_timeout{0};
    /// With command_timeout: PING every command_timeout while ready, the
    /// answer (PONG, or pong in subscribed mode) expected within it; for a
    /// connection whose other replies are pushes, not answers.
    bool ping_when_idle = false;
    std::size_t max_pending = 65536;
    std::function<void(std::string)> log;
    /// Scripts loaded (SCRIPT LOAD) on every connection before any queued
    /// command is written, so EVALSHA of a command queued during an outage
    /// finds them even on a Redis that restarted empty; `on_script_loaded`
    /// gets each one's index and SHA1.
    std::vector<std::string_view> scripts;
    std::function<void(std::size_t, std::string_view sha)> on_script_loaded;
    /// The owner chooses the address and when to connect (see connect_to).
    bool managed = false;
    /// The handshake ends with ROLE, which must say master.
    bool require_master = false;
    /// TLS (<mesa/broker/redis_tls.hpp>); null: plain sockets.
    std::shared_ptr<redis_stream_factory const> tls;
};

class redis_connection : public std::enable_shared_from_this<redis_connection> {
public:
    redis_connection(asio::any_io_executor executor, redis_connection_settings settings)
        : executor_(executor),
          settings_(std::move(settings)),
          resolver_(executor),
          timer_(executor),
          watchdog_(executor),
          backoff_(settings_.reconnect_initial, settings_.reconnect_max),
          // Publications read together are delivered as one burst (one write
          // per client), so a read may take a whole burst at once.
          read_buffer_(64 * 1024) {}

    redis_connection(redis_connection const&) = delete;
    redis_connection& operator=(redis_connection const&) = delete;

    /// Called when the connection is ready (after AUTH/SELECT), first time and
    /// after every reconnection.
    std::function<void()> on_ready;
    /// Called when the connection is lost or an attempt to connect fails.
    std::function<void()> on_down;
    /// Receives the replies no command waits for.
    std::function<void(redisReply const&)> on_push;
    /// A command was answered -READONLY (after its handler ran).
    std::function<void()> on_readonly;

    /// Connects (a managed connection waits for connect_to, holding commands).
    void start() {
        if (state_ != link::idle) return;
        if (settings_.managed)
            state_ = link::held;
        else
            attempt();
    }

    /// Managed: drops the current connection or attempt (commands in flight fail
    /// with disconnected, on_down is not called) and connects to `to`.
    void connect_to(redis_address const& to) {
        if (state_ == link::stopped) return;
        settings_.endpoint.host = to.host;
        settings_.endpoint.port = to.port;
        settings_.endpoint.unix_path.clear();
        bool const was_ready = state_ == link::ready;
        close();
        if (was_ready) outage_ = true;
        auto in_flight = std::move(in_flight_);
        in_flight_.clear();
        attempt();
        auto self = shared_from_this();
        for (auto& p : in_flight) {
            if (state_ == link::stopped) return;
            if (p.done) p.done(redis_errc::disconnected, nullptr);
        }
    }

    /// Managed, not connected: fails the commands waiting with `why`, and new
    /// ones until the next connect_to.
    void refuse(redis_errc why) {
        if (state_ == link::ready || state_ == link::stopped) return;
        close();
        state_ = link::waiting;
        refusal_ = why;
        auto queued = std::move(queued_);
        queued_.clear();
        auto in_flight = std::move(in_flight_);
        in_flight_.clear();
        auto self = shared_from_this();
        for (auto& p : in_flight) {
            if (state_ == link::stopped) return;
            if (p.done) p.done(why, nullptr);
        }
        for (auto& q : queued) {
            if (state_ == link::stopped) return;
            if (q.done) q.done(why, nullptr);
        }
    }

    /// Closes the socket; no handler is called afterwards.
    void stop() {
        if (state_ == link::stopped) return;
        state_ = link::stopped;
        close();
        queued_.clear();
        in_flight_.clear();
    }

    bool ready() const noexcept { return state_ == link::ready; }
    /// Why the last attempt failed or the connection was lost ("" before any failure).
    std::string const& last_failure() const noexcept { return last_failure_; }
    std::size_t pending() const noexcept { return queued_.size() + in_flight_.size(); }

    /// Sends `command` (RESP) once the connection is ready; fails at once when
    /// Redis is known to be down or past the bound. `blocks`: how long Redis
    /// may legitimately hold the reply (WAIT's timeout), added to command_timeout.
    void send(std::string command, redis_reply_handler done,
              std::chrono::milliseconds blocks = std::chrono::milliseconds(0)) {
        switch (state_) {
            case link::ready:
                if (pending() >= settings_.max_pending) return fail_later(std::move(done), redis_errc::queue_full);
                track(std::move(done), blocks);
                write(command);
                return;
            case link::connecting:
            case link::handshaking:
            case link::held:
                if (pending() >= settings_.max_pending) return fail_later(std::move(done), redis_errc::queue_full);
                queued_.push_back({std::move(command), std::move(done), blocks});
                return;
            case link::idle:
            case link::waiting:
            case link::stopped:
                return fail_later(std::move(done), refusal_);
        }
    }

    /// Sends a command whose replies go to on_push; false when not ready (the
    /// caller repeats it from on_ready).
    bool send_untracked(std::string_view command) {
        if (state_ != link::ready) return false;
        write(command);
        return true;
    }

private:
    // held: managed, waiting for connect_to with commands queued.
    enum class link { idle, connecting, handshaking, ready, waiting, held, stopped };
    struct queued_command {
        std::string bytes;
        redis_reply_handler done;
        std::chrono::milliseconds blocks;
    };
    using clock = std::chrono::steady_clock;
    struct awaiting_reply {
        redis_reply_handler done;
        clock::time_point deadline;  // max(): none (the handshake's: connect_timeout bounds it)
    };

    /// A command written on a ready connection: its reply is due by its deadline.
    void track(redis_reply_handler done, std::chrono::milliseconds blocks) {
        if (settings_.command_timeout.count() <= 0) {
            in_flight_.push_back({std::move(done), clock::time_point::max()});
            return;
        }
        in_flight_.push_back({std::move(done), clock::now() + settings_.command_timeout + blocks});
        if (!watching_) watch(in_flight_.front().deadline);
    }

    void watch(clock::time_point at) {
        watching_ = true;
        watchdog_.expires_at(at);
        watchdog_.async_wait([self = shared_from_this(), epoch = epoch_](std::error_code ec) {
            if (ec || !self->current(epoch)) return;
            self->watching_ = false;
            self->check();
        });
    }

    /// The watchdog fired: is the oldest reply (or the PING's) overdue?
    void check() {
        if (state_ != link::ready) return;
        auto const now = clock::now();
        auto const timeout = settings_.command_timeout;
        if (settings_.ping_when_idle && in_flight_.empty()) {
            if (pinging_) {
                if (now >= ping_sent_ + timeout)
                    return failed("no answer to PING within the command timeout (" + std::to_string(timeout.count()) +
                                  " ms)");
                return watch(ping_sent_ + timeout);
            }
            pinging_ = true;
            ping_sent_ = now;
            write(redis_command("PING"));
            return watch(now + timeout);
        }
        if (in_flight_.empty()) return;
        auto const deadline = in_flight_.front().deadline;
        if (deadline == clock::time_point::max()) return;
        if (now >= deadline)
            return failed("no reply within the command timeout (" + std::to_string(timeout.count()) + " ms)");
        watch(deadline);
    }

    void log(std::string text) const {
        if (settings_.log)
            settings_.log("redis " + settings_.name + " connection to " + settings_.endpoint.describe() + ": " + text);
    }

    void fail_later(redis_reply_handler done, redis_errc why) {
        asio::post(executor_, [self = shared_from_this(), done = std::move(done), why] {
            if (self->state_ != link::stopped && done) done(why, nullptr);
        });
    }

    bool current(std::uint64_t epoch) const noexcept { return state_ != link::stopped && epoch == epoch_; }

    void attempt() {
        state_ = link::connecting;
        // A new stream each time: a failed TLS session cannot be reused.
        if (settings_.tls)
            stream_ = settings_.tls->make(executor_);
        else
            stream_ = std::make_shared<redis_plain_stream>(executor_);
        auto const epoch = ++epoch_;
        timer_.expires_after(settings_.connect_timeout);
        timer_.async_wait([self = shared_from_this(), epoch](std::error_code ec) {
            if (ec || !self->current(epoch)) return;
            if (self->state_ != link::connecting && self->state_ != link::handshaking) return;
            // A plain Redis answers a TLS ClientHello with nothing: it waits for a line.
            self->failed(self->securing_ ? "timed out in the TLS handshake: does the server speak TLS? (a plain "
                                           "redis:// port)"
                                         : "timed out");
        });
        if (settings_.endpoint.is_unix()) {
            connect({asio::generic::stream_protocol::endpoint(
                        asio::local::stream_protocol::endpoint(settings_.endpoint.unix_path))},
                    0, epoch);
            return;
        }
        resolver_.async_resolve(
            settings_.endpoint.host, std::to_string(settings_.endpoint.port),
            [self = shared_from_this(), epoch](std::error_code ec, asio::ip::tcp::resolver::results_type results) {
                if (!self->current(epoch)) return;
                if (ec) return self->failed("cannot resolve: " + ec.message());
                std::vector<asio::generic::stream_protocol::endpoint> endpoints;
                for (auto const& r : results) endpoints.emplace_back(r.endpoint());
                self->connect(std::move(endpoints), 0, epoch);
            });
    }

    void connect(std::vector<asio::generic::stream_protocol::endpoint> endpoints, std::size_t index,
                 std::uint64_t epoch) {
        if (index >= endpoints.size()) return failed("no address to connect to");
        std::error_code ignored;
        stream_->socket().close(ignored);
        auto const endpoint = endpoints[index];
        stream_->socket().async_connect(endpoint, [self = shared_from_this(), endpoints = std::move(endpoints), index,
                                                   epoch](std::error_code ec) mutable {
            if (!self->current(epoch)) return;
            if (ec) {
                if (index + 1 < endpoints.size()) return self->connect(std::move(endpoints), index + 1, epoch);
                return self->failed(ec.message());
            }
            self->connected(epoch);
        });
    }

    void connected(std::uint64_t epoch) {
        if (!settings_.endpoint.is_unix()) {
            std::error_code ignored;
            stream_->socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        state_ = link::handshaking;
        securing_ = settings_.tls != nullptr;
        stream_->async_handshake(settings_.endpoint.host, [self = shared_from_this(), epoch](std::error_code ec) {
            if (!self->current(epoch)) return;
            self->securing_ = false;
            if (ec) return self->failed("TLS handshake failed: " + self->stream_->explain(ec));
            self->secured(epoch);
        });
    }

    /// The stream is ready (plain, or TLS after its handshake): the Redis handshake.
    void secured(std::uint64_t epoch) {
        reader_ = redis_reader();
        read(epoch);
        auto const& e = settings_.endpoint;
        std::vector<std::string> handshake;
        if (!e.password.empty())
            handshake.push_back(e.user.empty() ? redis_command("AUTH", e.password)
                                               : redis_command("AUTH", e.user, e.password));
        if (e.db != 0) handshake.push_back(redis_command("SELECT", std::to_string(e.db)));
        // PING proves the peer speaks Redis: a socket connected to itself (a
        // local port with nothing listening can do that) would echo commands.
        handshake.push_back(redis_command("PING"));
        std::size_t const role = settings_.require_master ? handshake.size() : std::size_t(-1);
        if (settings_.require_master) handshake.push_back(redis_command("ROLE"));
        std::size_t const first_script = handshake.size();
        for (auto script : settings_.scripts) handshake.push_back(redis_command("SCRIPT", "LOAD", script));
        auto remaining = std::make_shared<std::size_t>(handshake.size());
        for (std::size_t index = 0; index < handshake.size(); ++index) {
            auto const& command = handshake[index];
            bool const script = index >= first_script;
            // Handshake replies come before any queued command's: those are only
            // written once the connection is ready.
            redis_reply_handler on_reply = [this, self = shared_from_this(), remaining, epoch, script,
                                            is_role = index == role,
                                            n = index - first_script](std::error_code ec, redisReply const* reply) {
                if (!current(epoch)) return;
                if (ec)
                    return failed(reply ? "rejected the handshake: " + std::string(redis_text(*reply)) : ec.message());
                if (is_role) {
                    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
                        return failed("unexpected ROLE reply");
                    auto const role_name = redis_text(*reply->element[0]);
                    if (role_name != "master") return failed("not a master: its role is " + std::string(role_name));
                    if (--*remaining == 0) ready_now();
                    return;
                }
                if (reply->type != (script ? REDIS_REPLY_STRING : REDIS_REPLY_STATUS))
                    return failed("the peer does not speak RESP");
                if (script && settings_.on_script_loaded) settings_.on_script_loaded(n, redis_text(*reply));
                if (--*remaining == 0) ready_now();
            };
            // No deadline: connect_timeout bounds the handshake.
            in_flight_.push_back({std::move(on_reply), clock::time_point::max()});
            write(command);
        }
    }

    void ready_now() {
        state_ = link::ready;
        refusal_ = redis_errc::disconnected;
        backoff_.reset();
        timer_.cancel();
        if (outage_) log("restored");
        outage_ = false;
        auto queued = std::move(queued_);
        queued_.clear();
        for (auto& q : queued) {
            track(std::move(q.done), q.blocks);
            write(q.bytes);
        }
        if (settings_.ping_when_idle && settings_.command_timeout.count() > 0 && !watching_)
            watch(clock::now() + settings_.command_timeout);
        if (on_ready) on_ready();
    }

    void read(std::uint64_t epoch) {
        stream_->async_read_some(
            asio::buffer(read_buffer_), [self = shared_from_this(), epoch](std::error_code ec, std::size_t n) {
                if (!self->current(epoch)) return;
                if (ec)
                    return self->failed(ec == asio::error::eof ? "closed by the server" : self->stream_->explain(ec));
                if (!self->reader_.feed(self->read_buffer_.data(), n))
                    return self->failed("protocol error: " + self->reader_.error());
                for (;;) {
                    redis_reply_ptr reply;
                    auto const got = self->reader_.next(reply);
                    if (got == redis_reader::result::none) break;
                    if (got == redis_reader::result::error)
                        return self->failed("protocol error: " + self->reader_.error());
                    self->dispatch(*reply);
                    if (!self->current(epoch)) return;
                }
                self->read(epoch);
            });
    }

    void dispatch(redisReply const& reply) {
        if (!in_flight_.empty()) {
            auto done = std::move(in_flight_.front().done);
            in_flight_.pop_front();
            std::error_code ec;
            if (reply.type == REDIS_REPLY_ERROR) ec = redis_errc::server_error;
            if (done) done(ec, &reply);
            if (ec && on_readonly && state_ == link::ready && redis_text(reply).substr(0, 8) == "READONLY")
                on_readonly();
        } else if (pinging_ && is_pong(reply)) {
            pinging_ = false;
        } else if (on_push) {
            on_push(reply);
        } else {
            failed("unexpected reply: " + std::string(redis_text(reply)));
        }
    }

    // PONG, or ["pong", ""] on a subscribed connection.
    static bool is_pong(redisReply const& reply) {
        if (reply.type == REDIS_REPLY_STATUS) return redis_text(reply) == "PONG";
        return reply.type == REDIS_REPLY_ARRAY && reply.elements == 2 && reply.element[0]->type == REDIS_REPLY_STRING &&
               redis_text(*reply.element[0]) == "pong";
    }

    void write(std::string_view bytes) {
        out_.append(bytes);
        if (!writing_) flush();
    }

    void flush() {
        if (out_.empty()) return;
        writing_ = true;
        // Each write owns its bytes: a write cancelled by a reconnection may
        // complete after the next one has started.
        auto bytes = std::make_shared<std::string>(std::move(out_));
        out_.clear();
        stream_->async_write(asio::buffer(*bytes),
                             [self = shared_from_this(), bytes, epoch = epoch_](std::error_code ec, std::size_t) {
                                 if (!self->current(epoch)) return;
                                 self->writing_ = false;
                                 if (ec) return self->failed(self->stream_->explain(ec));
                                 self->flush();
                             });
    }

    void close() {
        ++epoch_;
        std::error_code ignored;
        if (stream_) stream_->socket().close(ignored);
        resolver_.cancel();
        timer_.cancel();
        watchdog_.cancel();
        watching_ = false;
        pinging_ = false;
        out_.clear();
        writing_ = false;
    }

    /// The connection was lost or the attempt failed.
    void failed(std::string const& why) {
        last_failure_ = why;
        bool const was_ready = state_ == link::ready;
        close();
        auto in_flight = std::move(in_flight_);
        in_flight_.clear();
        std::deque<queued_command> queued;
        if (settings_.managed) {
            // The owner finds the next address; commands wait for it (or its refusal).
            log(was_ready ? "lost (" + why + ")" : "cannot connect (" + why + ")");
            outage_ = true;
            state_ = link::held;
        } else if (was_ready) {
            log("lost (" + why + "), reconnecting");
            outage_ = true;
            // Most outages are restarts: the first attempt goes at once.
            attempt();
        } else {
            auto const delay = backoff_.next();
            log("cannot connect (" + why + "), retrying in " + std::to_string(delay.count()) + " ms");
            outage_ = true;
            // Commands waiting for this attempt fail now rather than wait an
            // unknown outage out.
            queued = std::move(queued_);
            queued_.clear();
            state_ = link::waiting;
            auto const epoch = epoch_;
            timer_.expires_after(delay);
            timer_.async_wait([self = shared_from_this(), epoch](std::error_code ec) {
                if (ec || !self->current(epoch) || self->state_ != link::waiting) return;
                self->attempt();
            });
        }
        auto self = shared_from_this();
        if (on_down) on_down();
        for (auto& p : in_flight) {
            if (state_ == link::stopped) return;
            if (p.done) p.done(redis_errc::disconnected, nullptr);
        }
        for (auto& q : queued) {
            if (state_ == link::stopped) return;
            if (q.done) q.done(redis_errc::disconnected, nullptr);
        }
    }

    asio::any_io_executor executor_;
    redis_connection_settings settings_;
    std::shared_ptr<redis_stream> stream_;  // of the current attempt (null before the first)
    asio::ip::tcp::resolver resolver_;
    asio::steady_timer timer_;
    asio::steady_timer watchdog_;  // command_timeout: at the oldest reply's deadline (or the PING's)
    redis_backoff backoff_;
    redis_reader reader_;
    std::vector<char> read_buffer_;
    std::string out_;  // bytes waiting for the current write to finish
    std::string last_failure_;
    bool writing_ = false;
    bool watching_ = false;  // watchdog_ armed
    bool pinging_ = false;   // ping_when_idle: a PING awaits its answer since ping_sent_
    clock::time_point ping_sent_;
    bool outage_ = false;
    link state_ = link::idle;
    bool securing_ = false;                          // in the TLS handshake
    redis_errc refusal_ = redis_errc::disconnected;  // what sends get while waiting
    std::uint64_t epoch_ = 0;                        // bumped on close: handlers of an older socket do nothing
    std::deque<queued_command> queued_;              // waiting for the connection (bounded by max_pending)
    std::deque<awaiting_reply> in_flight_;           // written, in reply order (bounded by max_pending)
};

}  // namespace mesa::broker::detail
