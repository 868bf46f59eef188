#pragma once
// middleware: handlers for the reference's middleware events, registered with
// server.feature<mesa::middleware>().use(...). A middleware is made from the
// server, so it can keep state and reach the broker (its keys via
// server.keys().middleware(prefix, name)). A throwing handler is reported as
// an error event and the server goes on.
//
//   server.feature<mesa::middleware>().use([](auto& server) {
//       mesa::middleware::handlers<std::decay_t<decltype(server)>> h;
//       h.on_message_received = [](mesa::message const& m, auto const& client) { ... };
//       return h;
//   });
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <mesa/feature/hooks.hpp>

namespace mesa {

struct middleware {
    struct options {
        bool enabled = true;
    };
    struct state {};
    // on_message_sent needs each broadcast's recipients.
    static constexpr bool watches_deliveries = true;

    /// One middleware's handlers; leave unused ones empty.
    template <class Server>
    struct handlers {
        using client_ptr = typename Server::client_ptr;
        std::function<void(client_ptr const&)> on_connection;
        std::function<void(client_ptr const&, std::uint16_t code, std::string const& reason)> on_disconnection;
        std::function<void(std::string const& portal_id)> on_portal_join;
        std::function<void(std::string const& portal_id)> on_portal_leave;
        std::function<void(message const&, std::vector<std::string> const& ids)> on_undeliverable_message_sent;
        std::function<void(std::vector<message> const&, client_ptr const&)> on_redeliver_undeliverable_messages;
        /// `from_current_replica`: sent by this server rather than received from the cluster.
        std::function<void(message const&, std::vector<client_ptr> const&, bool from_current_replica)> on_message_sent;
        std::function<void(message const&, client_ptr const&)> on_message_received;
        std::function<void(client_ptr const&)> on_authenticated;
        std::function<void(std::string const& error, client_ptr const&)> on_error;
    };

    template <class Server>
    class component : public feature::hooks {
    public:
        using client = typename Server::client;
        using client_ptr = typename Server::client_ptr;

        component(Server& server, options const& o) : server_(&server), options_(o) {}

        /// Registers the middleware `make(server)` returns.
        template <class Make>
        void use(Make&& make) {
            list_.push_back(std::forward<Make>(make)(*server_));
        }

        void on_open(client& c) { emit(&handlers<Server>::on_connection, c.shared_from_this()); }
        void on_close(client& c, std::uint16_t code, std::string const& reason) {
            emit(&handlers<Server>::on_disconnection, c.shared_from_this(), code, reason);
        }
        void on_received(client& c, message const& m) {
            emit(&handlers<Server>::on_message_received, m, c.shared_from_this());
        }
        void on_authenticated(client& c) { emit(&handlers<Server>::on_authenticated, c.shared_from_this()); }
        template <class Clients>
        void on_delivered(message const& m, Clients const& delivered, bool from_current_replica) {
            if (!wanted(&handlers<Server>::on_message_sent)) return;
            std::vector<client_ptr> recipients;
            recipients.reserve(delivered.size());
            for (auto* c : delivered) recipients.push_back(c->shared_from_this());
            emit(&handlers<Server>::on_message_sent, m, recipients, from_current_replica);
        }
        void on_error(std::string const& what, client_ptr const& c) {
            if (in_error_) return;  // an on_error that fails must not loop
            in_error_ = true;
            for (auto& h : list_)
                if (h.on_error) try {
                        h.on_error(what, c);
                    } catch (...) {
                    }
            in_error_ = false;
        }

        // Called by other features.
        void undeliverable_message_sent(message const& m, std::vector<std::string> const& ids) {
            emit(&handlers<Server>::on_undeliverable_message_sent, m, ids);
        }
        void redelivering(std::vector<message> const& messages, client_ptr const& c) {
            emit(&handlers<Server>::on_redeliver_undeliverable_messages, messages, c);
        }
        void portal_joined(std::string const& id) { emit(&handlers<Server>::on_portal_join, id); }
        void portal_left(std::string const& id) { emit(&handlers<Server>::on_portal_leave, id); }

    private:
        template <class Member>
        bool wanted(Member member) const {
            if (!options_.enabled) return false;
            for (auto const& h : list_)
                if (h.*member) return true;
            return false;
        }

        template <class Member, class... Args>
        void emit(Member member, Args const&... args) {
            if (!options_.enabled) return;
            for (auto& h : list_)
                if (h.*member) server_->guarded(nullptr, "middleware", [&] { (h.*member)(args...); });
        }

        Server* server_;
        options options_;
        std::vector<handlers<Server>> list_;
        bool in_error_ = false;
    };
};

}  // namespace mesa
