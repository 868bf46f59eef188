#pragma once
// message_store (the reference's options.storeMessages): each client keeps
// the messages it sent and received, newest last, up to `max_per_direction`
// each (the oldest go first; the reference keeps them without bound).
//
//   auto const& log = client->state<mesa::message_store>();
//   for (auto const& m : log.received) ...
#include <cstddef>
#include <deque>

#include <mesa/feature/hooks.hpp>

namespace mesa {

struct message_store {
    struct options {
        bool enabled = true;
        std::size_t max_per_direction = 1000;  // per client; 0: unbounded
    };
    struct state {
        std::deque<message> sent;      // by the server to this client
        std::deque<message> received;  // from this client
    };

    template <class Server>
    struct component : feature::hooks {
        component(Server&, options const& o) : options_(o) {}

        void on_hello(json::object&, json::array& rules) const {
            if (options_.enabled) rules.emplace_back("store_messages");
        }
        template <class Client>
        void on_sent(Client& c, message const& m) {
            keep(c.template state<message_store>().sent, m);
        }
        template <class Client>
        void on_received(Client& c, message const& m) {
            keep(c.template state<message_store>().received, m);
        }

    private:
        void keep(std::deque<message>& list, message const& m) {
            if (!options_.enabled) return;
            list.push_back(m);
            if (options_.max_per_direction && list.size() > options_.max_per_direction) list.pop_front();
        }

        options options_;
    };
};

}  // namespace mesa
