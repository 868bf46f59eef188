#pragma once
// authentication: clients identify with op 2; the application decides.
//
//   server.feature<mesa::authentication>().on_authenticate(
//       [](auto const& client, mesa::json::object const& credentials, mesa::authentication::done done) {
//           if (credentials.contains("token")) done.succeed("user-1", {{"name", "Ada"}});
//           else done.fail("no token");
//       });
//
// `done` may be called later (after an asynchronous lookup); calling it after
// the client left does nothing. Success gives the client its id (sends to that
// id reach it), sends op 22 the first time, and adds the id to the broker's
// connected set. Failure closes with 1008 when disconnect_on_fail. A client
// that has not authenticated within `timeout` is closed with
// close_code::authentication_timeout (4001); the reference only advertises it.
//
// Sessions end with their credentials: `done.succeed(id, user, expires_at)`
// gives the token's expiry, and at that time the client is closed with
// close_code::token_expired (4004) and the error event. An op 2 for the same
// id before then is a refresh: the new expiry replaces the old, the user
// object is replaced, and neither op 22 nor sync redelivery runs again. An
// op 2 for another id is a new authentication. A verdict whose expiry has
// already passed is a failure (1008 when disconnect_on_fail).
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <mesa/close_code.hpp>
#include <mesa/feature/hooks.hpp>
#include <mesa/opcode.hpp>

namespace mesa {

struct authentication {
    struct options {
        bool enabled = true;
        std::chrono::milliseconds timeout{10000};  // 0: no deadline, and none advertised
        bool required = false;                     // server-wide sends skip unauthenticated clients
        bool send_user_object = true;              // op 22 carries the user, else {}
        bool disconnect_on_fail = true;            // failure closes with 1008
        bool store_connected_users = true;         // ids go to the broker's connected_clients set
    };
    /// Wall-clock time, the clock of token expiries (a JWT's `exp`).
    using expiry_time = std::chrono::system_clock::time_point;

    struct state {
        json::value user;
        bool authenticated = false;
        bool should_sync = true;
        // When the credentials expire (steady clock); unset: never.
        std::optional<std::chrono::steady_clock::time_point> expires_at;
        // The earliest expiry deadline queued for this client, if any.
        std::optional<std::chrono::steady_clock::time_point> expiry_queued;
    };

    /// The application's verdict on one authentication attempt. Call one of
    /// its functions once, on the server's thread.
    class done {
    public:
        using succeed_fn = std::function<void(std::string id, json::value user, std::optional<expiry_time>)>;
        using fail_fn = std::function<void(std::string reason)>;
        done(succeed_fn s, fail_fn f) : succeed_(std::move(s)), fail_(std::move(f)) {}
        /// Admits the client as `id`; its session does not expire. An empty
        /// id or "*" (every client, in recipients) is a failure instead.
        void succeed(std::string id, json::value user = json::object()) const {
            succeed_(std::move(id), std::move(user), std::nullopt);
        }
        /// Admits the client as `id` until `expires_at` (then 4004, unless refreshed).
        void succeed(std::string id, json::value user, expiry_time expires_at) const {
            succeed_(std::move(id), std::move(user), expires_at);
        }
        void fail(std::string reason) const { fail_(std::move(reason)); }

    private:
        succeed_fn succeed_;
        fail_fn fail_;
    };

    template <class Server>
    class component : public feature::hooks {
    public:
        using client = typename Server::client;
        using client_ptr = typename Server::client_ptr;
        using handler = std::function<void(client_ptr const&, json::object const& credentials, done)>;

        component(Server& server, options const& o) : server_(&server), options_(o) {}
        component(component&&) = default;

        /// Decides on every op 2 (credentials are `d`, `shouldSync` included).
        void on_authenticate(handler h) { handler_ = std::move(h); }

        /// Replaces the user object of an authenticated client (no new op 22).
        void update_user(client& c, json::value user) {
            auto& s = c.template state<authentication>();
            if (!s.authenticated) {
                server_->report("update_user on a client that has not authenticated", c.shared_from_this());
                return;
            }
            s.user = std::move(user);
        }

        options const& config() const noexcept { return options_; }

        void on_start() {
            if (options_.enabled) timer_ = std::make_unique<asio::steady_timer>(server_->context());
        }
        void on_stop() {
            if (timer_) timer_->cancel();
        }
        void on_hello(json::object& d, json::array& rules) const {
            if (!options_.enabled) return;
            if (options_.timeout.count() > 0) d["c_authentication_timeout"] = options_.timeout.count();
            if (options_.send_user_object) rules.emplace_back("sends_user_object");
        }
        void on_open(client& c) {
            if (enforces_timeout())
                queue({std::chrono::steady_clock::now() + options_.timeout, c.weak_from_this(), false});
        }
        bool on_message(client& c, message& m) {
            if (m.op != opcode::authenticate || !options_.enabled) return false;
            auto& s = c.template state<authentication>();
            auto const* should_sync = m.d.if_contains("shouldSync");
            s.should_sync = !(should_sync && should_sync->is_bool() && !should_sync->get_bool());
            auto self = c.shared_from_this();
            if (!handler_) {
                server_->report("op 2 received but no authentication handler is set", self);
                return true;
            }
            std::weak_ptr<client> weak = self;
            done verdict(
                [this, weak](std::string id, json::value user, std::optional<expiry_time> expires_at) {
                    succeeded(weak, std::move(id), std::move(user), expires_at);
                },
                [this, weak](std::string reason) { failed(weak, std::move(reason)); });
            server_->guarded(self, "authentication handler", [&] { handler_(self, m.d, std::move(verdict)); });
            return true;
        }
        bool may_receive(client const& c) const {
            return !options_.required || c.template state<authentication>().authenticated;
        }

    private:
        bool enforces_timeout() const { return options_.enabled && options_.timeout.count() > 0; }

        void succeeded(std::weak_ptr<client> const& weak, std::string id, json::value user,
                       std::optional<expiry_time> expires_at) {
            auto c = weak.lock();
            if (!c || !c->is_open()) return;
            // "*" addresses every client in recipients (PROTOCOL.md), so it
            // cannot be one user's id; nor can nothing.
            if (id.empty()) return failed(weak, "the handler gave no id");
            if (id == "*") return failed(weak, "the handler gave the id \"*\", which means every client");
            std::optional<std::chrono::steady_clock::time_point> expiry;
            if (expires_at) {
                auto const left = *expires_at - std::chrono::system_clock::now();
                if (left <= left.zero()) return failed(weak, "token expired");
                expiry = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
            }
            auto& s = c->template state<authentication>();
            bool const refresh = s.authenticated && c->id() == id;
            server_->set_id(*c, id);  // re-authenticated as someone else: leaves the old id
            s.user = std::move(user);
            expire_at(*c, expiry);
            if (refresh) return;  // same session, new credentials
            if (!options_.store_connected_users) return welcome(*c);
            // Under a per-user cap the broker admits it first (else 4005).
            server_->mark_present(*c, [this, weak] {
                if (auto c = weak.lock(); c && c->is_open()) welcome(*c);
            });
        }

        // Op 22 the first time, then the features' on_authenticated (sync redelivery).
        void welcome(client& c) {
            auto& s = c.template state<authentication>();
            if (!s.authenticated) {
                s.authenticated = true;
                json::object d;
                if (options_.send_user_object && s.user.is_object())
                    d = s.user.get_object();
                else if (options_.send_user_object && !s.user.is_null())
                    d = {{"user", s.user}};
                c.send(message(opcode::authenticated, std::move(d)));
            }
            server_->authenticated(c);
        }

        void failed(std::weak_ptr<client> const& weak, std::string reason) {
            auto c = weak.lock();
            if (!c || !c->is_open()) return;
            server_->report("authentication failed: " + reason, c);
            if (options_.disconnect_on_fail) server_->close(*c, close_code::policy_violation, "authentication failed");
        }

        void expire_at(client& c, std::optional<std::chrono::steady_clock::time_point> at) {
            auto& s = c.template state<authentication>();
            s.expires_at = at;
            // A later expiry waits for the queued one, which queues it again.
            if (!at || (s.expiry_queued && *s.expiry_queued <= *at)) return;
            s.expiry_queued = at;
            queue({*at, c.weak_from_this(), true});
        }

        // ---- deadlines ------------------------------------------------------
        // One timer for every client's authentication timeout and credential
        // expiry: a min-heap of deadlines, the timer set to the earliest. An
        // entry whose client left, authenticated in time or refreshed is
        // skipped when due, and dropped by compact() before it is due once
        // such entries outnumber the live ones.
        struct deadline {
            std::chrono::steady_clock::time_point at;
            std::weak_ptr<client> who;
            bool expiry;  // else the authentication timeout
        };
        static bool later(deadline const& a, deadline const& b) { return a.at > b.at; }

        void queue(deadline d) {
            if (!timer_) return;
            if (deadlines_.size() >= 2 * server_->clients().size() + 64) compact();
            bool const earliest = deadlines_.empty() || d.at < deadlines_.front().at;
            deadlines_.push_back(std::move(d));
            std::push_heap(deadlines_.begin(), deadlines_.end(), later);
            if (earliest) arm();
        }

        bool live(deadline const& d) const {
            auto c = d.who.lock();
            if (!c || !c->is_open()) return false;
            auto const& s = c->template state<authentication>();
            if (!d.expiry) return !s.authenticated;
            return s.expiry_queued && *s.expiry_queued == d.at;
        }

        void compact() {
            deadlines_.erase(
                std::remove_if(deadlines_.begin(), deadlines_.end(), [this](deadline const& d) { return !live(d); }),
                deadlines_.end());
            std::make_heap(deadlines_.begin(), deadlines_.end(), later);
        }

        void arm() {
            timer_->expires_at(deadlines_.front().at);
            timer_->async_wait([this](std::error_code ec) {
                if (ec) return;  // cancelled: stopping, or armed again for an earlier deadline
                auto const now = std::chrono::steady_clock::now();
                while (!deadlines_.empty() && deadlines_.front().at <= now) {
                    std::pop_heap(deadlines_.begin(), deadlines_.end(), later);
                    deadline d = std::move(deadlines_.back());
                    deadlines_.pop_back();
                    due(d, now);
                }
                if (!deadlines_.empty()) arm();
            });
        }

        void due(deadline const& d, std::chrono::steady_clock::time_point now) {
            bool const was_live = live(d);
            auto c = d.who.lock();
            if (!was_live) return;
            if (!d.expiry) {
                server_->close(*c, close_code::authentication_timeout, "authentication timeout");
                return;
            }
            auto& s = c->template state<authentication>();
            s.expiry_queued.reset();
            if (!s.expires_at) return;  // refreshed with credentials that do not expire
            if (*s.expires_at <= now) {
                server_->close(*c, close_code::token_expired, "token expired");
                return;
            }
            s.expiry_queued = s.expires_at;  // refreshed: wait for the new expiry
            deadlines_.push_back({*s.expires_at, d.who, true});
            std::push_heap(deadlines_.begin(), deadlines_.end(), later);
        }

        Server* server_;
        options options_;
        handler handler_;
        std::unique_ptr<asio::steady_timer> timer_;
        std::vector<deadline> deadlines_;  // a heap, earliest first
    };
};

}  // namespace mesa
