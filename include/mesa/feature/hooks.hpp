#pragma once
// The hooks a feature policy may implement. A feature F provides:
//
//   struct F {
//       struct options { bool enabled = true; ... };       // its configuration
//       struct state { ... };                              // per connection
//       template <class Server> struct component : mesa::feature::hooks { ... };
//   };
//
// `component` is built once per server with (Server&, options const&) and
// overrides the hooks it needs; the others are these no-ops, which the
// compiler removes. A server that does not list F has none of it.
#include <boost/json.hpp>

#include <mesa/message.hpp>

namespace mesa::feature {

struct hooks {
    void on_start() {}
    void on_stop() {}
    /// Adds the feature's fields and rules to the hello (op 10).
    void on_hello(json::object&, json::array&) const {}
    template <class Client>
    void on_open(Client&) {}
    /// Returns true when the feature consumed the message.
    template <class Client>
    bool on_message(Client&, message&) {
        return false;
    }
    template <class Client>
    void on_received(Client&, message const&) {}
    template <class Client>
    void on_sent(Client&, message const&) {}
    template <class Client>
    void on_authenticated(Client&) {}
    template <class Client>
    void on_close(Client&) {}
    /// False keeps server-wide sends away from this client.
    template <class Client>
    bool may_receive(Client const&) const {
        return true;
    }
};

}  // namespace mesa::feature
