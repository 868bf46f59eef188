#pragma once
// portals (the reference's portal.enabled): every client event (connection,
// authentication, message, disconnection) goes to one portal of the pool
// (mesa::portal in any process, or a Node Portal): round-robin with
// distribute_load, random otherwise. The pool is read at start and followed
// live through the join/leave announcements.
#include <boost/json.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <mesa/feature/hooks.hpp>
#include <mesa/portal_event.hpp>

namespace mesa {

struct middleware;

struct portals {
    struct options {
        bool enabled = true;
        bool distribute_load = true;
    };
    struct state {};

    template <class Server>
    class component : public feature::hooks {
    public:
        using client = typename Server::client;

        component(Server& server, options const& o) : server_(&server), options_(o) {}

        /// The portal ids this server currently knows of.
        std::vector<std::string> const& pool() const noexcept { return pool_; }

        void on_start() {
            if (!options_.enabled) return;
            server_->broker().subscribe(server_->keys().available_portals_pool(),
                                        [this](std::string_view payload) { presence(payload); });
            read_pool();
        }
        // Announcements made during the outage were missed.
        void on_broker_restored() {
            if (options_.enabled) read_pool();
        }

        void on_open(client&) { emit("connection", std::nullopt, nullptr); }
        void on_authenticated(client& c) { emit("authentication", c.id(), nullptr); }
        void on_received(client& c, message const& m) {
            emit("message", c.id().empty() ? std::nullopt : std::optional<std::string>(c.id()), &m);
        }
        void on_close(client& c, std::uint16_t, std::string const&) {
            emit("disconnection", c.id().empty() ? std::nullopt : std::optional<std::string>(c.id()), nullptr);
        }

    private:
        void read_pool() {
            server_->broker().set_members(
                server_->keys().available_portals_pool(), [this](std::error_code ec, std::vector<std::string> ids) {
                    if (ec) {
                        server_->report("portals: cannot read the pool (" + ec.message() + ")");
                        return;
                    }
                    for (auto& id : ids) join(id);
                });
        }

        void presence(std::string_view payload) {
            boost::system::error_code ec;
            auto v = json::parse(payload, ec);
            auto const* o = ec ? nullptr : v.if_object();
            auto const* id = o ? o->if_contains("id") : nullptr;
            auto const* ready = o ? o->if_contains("ready") : nullptr;
            if (!id || !id->is_string() || !ready || !ready->is_bool()) {
                server_->report("portals: malformed pool announcement");
                return;
            }
            std::string portal_id(id->get_string());
            if (ready->get_bool())
                join(portal_id);
            else
                leave(portal_id);
        }

        void join(std::string const& id) {
            if (std::find(pool_.begin(), pool_.end(), id) != pool_.end()) return;
            pool_.push_back(id);
            if constexpr (Server::template has<middleware>) server_->template feature<middleware>().portal_joined(id);
        }

        void leave(std::string const& id) {
            auto it = std::find(pool_.begin(), pool_.end(), id);
            if (it == pool_.end()) return;
            pool_.erase(it);
            if constexpr (Server::template has<middleware>) server_->template feature<middleware>().portal_left(id);
        }

        void emit(char const* type, std::optional<std::string> client_id, message const* m) {
            if (!options_.enabled || pool_.empty()) return;
            portal_event e;
            e.type = type;
            e.client_id = std::move(client_id);
            if (m) e.msg = *m;
            e.portal_id = choose();
            server_->broker().publish(server_->keys().portal(), serialize(e));
        }

        std::string const& choose() {
            if (options_.distribute_load) {
                next_ = (next_ + 1) % pool_.size();
                return pool_[next_];
            }
            std::uniform_int_distribution<std::size_t> pick(0, pool_.size() - 1);
            return pool_[pick(rng_)];
        }

        Server* server_;
        options options_;
        std::vector<std::string> pool_;
        std::size_t next_ = 0;
        std::mt19937 rng_{std::random_device{}()};
    };
};

}  // namespace mesa
