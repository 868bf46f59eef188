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
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>

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
    struct state {
        json::value user;
        bool authenticated = false;
        bool should_sync = true;
    };

    /// The application's verdict on one authentication attempt.
    class done {
    public:
        using succeed_fn = std::function<void(std::string id, json::value user)>;
        using fail_fn = std::function<void(std::string reason)>;
        done(succeed_fn s, fail_fn f) : succeed_(std::move(s)), fail_(std::move(f)) {}
        void succeed(std::string id, json::value user = json::object()) const {
            succeed_(std::move(id), std::move(user));
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
            if (enforces_timeout()) timer_ = std::make_unique<asio::steady_timer>(server_->context());
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
            if (!timer_) return;
            deadlines_.push_back({std::chrono::steady_clock::now() + options_.timeout, c.weak_from_this()});
            if (deadlines_.size() == 1) arm();
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
                [this, weak](std::string id, json::value user) { succeeded(weak, std::move(id), std::move(user)); },
                [this, weak](std::string reason) { failed(weak, std::move(reason)); });
            server_->guarded(self, "authentication handler", [&] { handler_(self, m.d, std::move(verdict)); });
            return true;
        }
        bool may_receive(client const& c) const {
            return !options_.required || c.template state<authentication>().authenticated;
        }

    private:
        bool enforces_timeout() const { return options_.enabled && options_.timeout.count() > 0; }

        void succeeded(std::weak_ptr<client> const& weak, std::string id, json::value user) {
            auto c = weak.lock();
            if (!c || !c->is_open()) return;
            if (id.empty()) {
                server_->report("authentication succeeded without an id", c);
                return;
            }
            auto& s = c->template state<authentication>();
            server_->set_id(*c, id);  // re-authenticated as someone else: leaves the old id
            s.user = std::move(user);
            if (options_.store_connected_users) server_->mark_present(*c);
            if (!s.authenticated) {
                s.authenticated = true;
                json::object d;
                if (options_.send_user_object && s.user.is_object())
                    d = s.user.get_object();
                else if (options_.send_user_object && !s.user.is_null())
                    d = {{"user", s.user}};
                c->send(message(opcode::authenticated, std::move(d)));
            }
            server_->authenticated(*c);
        }

        void failed(std::weak_ptr<client> const& weak, std::string reason) {
            auto c = weak.lock();
            if (!c || !c->is_open()) return;
            server_->report("authentication failed: " + reason, c);
            if (options_.disconnect_on_fail) server_->close(*c, close_code::policy_violation, "authentication failed");
        }

        // Every client gets the same timeout, so deadlines arrive in order:
        // one timer for the oldest is enough.
        void arm() {
            timer_->expires_at(deadlines_.front().at);
            timer_->async_wait([this](std::error_code ec) {
                if (ec) return;
                auto now = std::chrono::steady_clock::now();
                while (!deadlines_.empty() && deadlines_.front().at <= now) {
                    if (auto c = deadlines_.front().who.lock();
                        c && c->is_open() && !c->template state<authentication>().authenticated)
                        server_->close(*c, close_code::authentication_timeout, "authentication timeout");
                    deadlines_.pop_front();
                }
                if (!deadlines_.empty()) arm();
            });
        }

        struct deadline {
            std::chrono::steady_clock::time_point at;
            std::weak_ptr<client> who;
        };

        Server* server_;
        options options_;
        handler handler_;
        std::unique_ptr<asio::steady_timer> timer_;
        std::deque<deadline> deadlines_;
    };
};

}  // namespace mesa
