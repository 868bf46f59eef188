#pragma once
// reconnect: advertises how long clients wait before reconnecting.
#include <chrono>

#include <mesa/feature/hooks.hpp>

namespace mesa {

struct reconnect {
    struct options {
        bool enabled = true;
        std::chrono::milliseconds interval{5000};  // c_reconnect_interval in the hello
    };
    struct state {};

    template <class Server>
    struct component : feature::hooks {
        component(Server&, options const& o) : options_(o) {}
        void on_hello(json::object& d, json::array&) const {
            if (options_.enabled) d["c_reconnect_interval"] = options_.interval.count();
        }
        options options_;
    };
};

}  // namespace mesa
