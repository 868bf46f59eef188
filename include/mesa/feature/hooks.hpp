#pragma once
// The hooks a feature policy may implement. A feature F provides:
//
//   struct F {
//       struct options { bool enabled = true; ... };       // its configuration
//       struct state { ... };                              // per connection
//       template <class Server> struct component : mesa::feature::hooks { ... };
//   };
//
// A feature whose `component` derives from `hooks` and hides some of them
// gets only those called; the rest compile to nothing.
//
// `component` is built once per server with (Server&, options const&) and
// overrides the hooks it needs; the others are these no-ops, which the
// compiler removes. A server that does not list F has none of it.
#include <boost/json.hpp>

#include <cstdint>
#include <string>
#include <type_traits>

#include <mesa/message.hpp>

namespace mesa::feature {

/// True for a feature that declares `static constexpr bool watches_deliveries
/// = true`: only then does the server collect each broadcast's recipients.
template <class F, class = void>
struct watches_deliveries : std::false_type {};
template <class F>
struct watches_deliveries<F, std::void_t<decltype(F::watches_deliveries)>> : std::bool_constant<F::watches_deliveries> {
};

struct hooks {
    void on_start() {}
    void on_stop() {}
    /// The broker is back after an outage and may have lost its data:
    /// re-register what this feature keeps there.
    void on_broker_restored() {}
    /// This instance registered its sockets again in the cluster's presence
    /// (it had been reaped, or the broker lost its state): messages stored
    /// for its ids meanwhile wait in their backlogs.
    void on_registered_again() {}
    /// The broker's subscriptions are active again after they were lost:
    /// publications made meanwhile never arrived.
    void on_resubscribed() {}
    /// Adds the feature's fields and rules to the hello (op 10).
    void on_hello(json::object&, json::array&) const {}
    template <class Client>
    void on_open(Client&) {}
    /// Every frame from a client, before it is parsed; false drops it (the
    /// feature closed the client).
    template <class Client>
    bool on_frame(Client&) {
        return true;
    }
    /// Every parsed frame from a client, before any feature consumes it.
    template <class Client>
    void on_parsed(Client&, message const&) {}
    /// Returns true when the feature consumed the message.
    template <class Client>
    bool on_message(Client&, message&) {
        return false;
    }
    template <class Client>
    void on_received(Client&, message const&) {}
    template <class Client>
    void on_sent(Client&, message const&) {}
    /// A message (number `seq` of an outbox, or 0) is about to be delivered
    /// to `client` alone; returning true keeps it (the feature delivers the
    /// frame later, in order).
    template <class Client, class Frame>
    bool hold(Client&, message const&, Frame const&, std::int64_t /*seq*/) {
        return false;
    }
    /// Outbox message `seq` (lossless sync) was written to `client`.
    template <class Client>
    void on_outbox_sent(Client&, std::int64_t /*seq*/) {}
    template <class Client>
    void on_authenticated(Client&) {}
    template <class Client>
    void on_close(Client&, std::uint16_t /*code*/, std::string const& /*reason*/) {}
    /// A send to ids is about to be published; returning true takes it over
    /// (the feature delivers it, and calls `done` when the broker took it,
    /// when `done` is set).
    template <class Envelope, class Done>
    bool on_send(Envelope&, Done&) {
        return false;
    }
    /// As on_send, for an idempotent send: a feature that takes it over
    /// claims `claim` in the same broker step and calls `done(ec, claim_result)`.
    template <class Envelope, class Claim, class Done>
    bool on_send_once(Envelope&, Claim const&, Done&) {
        return false;
    }
    /// A send (from this server or from the cluster) reached these local clients.
    template <class Clients>
    void on_delivered(message const&, Clients const&, bool /*from_current_replica*/) {}
    template <class ClientPtr>
    void on_error(std::string const&, ClientPtr const&) {}
    /// False keeps server-wide sends away from this client.
    template <class Client>
    bool may_receive(Client const&) const {
        return true;
    }
};

}  // namespace mesa::feature
