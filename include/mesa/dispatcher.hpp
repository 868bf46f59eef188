#pragma once
// mesa::dispatcher: sends to the clients of a Mesa cluster from any process,
// without a server (the reference's Dispatcher). Works with any broker; with
// broker::redis it interoperates with Node Mesa servers.
//
//   mesa::dispatcher<mesa::broker::redis> d{ioc.get_executor(), {.broker = {"redis://127.0.0.1:6379"}}};
//   d.dispatch(mesa::message("NEW_MESSAGE", {{"text", "hi"}}), {"user-1"});
//
// With `sync`, ids not in the connected set get the message in their backlog
// instead (unless the message says sync = false), as a Node dispatcher does,
// in one atomic step; ids held by our servers also keep it in their outbox
// until a socket confirms it (see feature/sync.hpp).
// Thread-safety: use it on its executor's thread.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <mesa/close_code.hpp>
#include <mesa/detail/idempotent_send.hpp>
#include <mesa/detail/offline_router.hpp>
#include <mesa/disconnect.hpp>
#include <mesa/envelope.hpp>
#include <mesa/idempotency.hpp>
#include <mesa/keys.hpp>
#include <mesa/message.hpp>
#include <mesa/opcode.hpp>

namespace mesa {

template <class Broker>
class dispatcher {
public:
    struct options {
        std::string namespace_name;
        bool sync = false;
        std::size_t max_backlog = 1000;  // per id, as in the sync feature; 0: unbounded
        typename Broker::options broker{};
    };

    explicit dispatcher(asio::any_io_executor executor, options opts = {})
        : options_(std::move(opts)),
          keys_(options_.namespace_name),
          broker_(std::move(executor), options_.broker),
          router_(broker_, keys_, options_.max_backlog, {},
                  {[this](std::string const& what) { report(what); }, {}, {}, {}}) {}

    dispatcher(dispatcher const&) = delete;
    dispatcher& operator=(dispatcher const&) = delete;

    /// Failures (a backlog that could not be written, a full backlog) go here.
    void on_error(std::function<void(std::string const&)> h) { on_error_ = std::move(h); }

    /// Sends `m` to `recipients` (`{"*"}`: every client) minus `excluding`.
    /// `done`, when given, learns when the broker has taken it (published,
    /// or stored for offline ids with sync), or the error that kept it from
    /// doing so: then nothing was stored, and the caller may retry.
    void dispatch(message const& m, std::vector<std::string> recipients = {"*"},
                  std::vector<std::string> const& excluding = {}, broker::completion done = {}) {
        envelope e = addressed(m, std::move(recipients), excluding);
        if (e.recipients.empty()) {
            if (done) done({});
            return;
        }
        if (!e.to_everyone() && options_.sync && wants_sync(m))
            router_.route(std::move(e), std::move(done));
        else
            publish(e, std::move(done));
    }

    /// As dispatch(m, recipients, excluding, done), at most once per
    /// `once.key` in the cluster (mesa/idempotency.hpp): the key is claimed
    /// in the same broker step as the store or publish; `done(ec, result)`
    /// tells whether this call sent, found an earlier send's result
    /// (`replayed`, nothing sent) or found one under way (`in_flight`).
    /// Recipients that are all excluded: nothing sent or recorded, `sent`.
    /// Throws std::invalid_argument for a key is_idempotency_key refuses.
    ///
    ///   d.dispatch(m, {"u1"}, {}, {"order-42"}, [](std::error_code ec, mesa::send_result r) { ... });
    void dispatch(message const& m, std::vector<std::string> recipients, std::vector<std::string> const& excluding,
                  idempotency const& once, send_handler done) {
        auto const claim = detail::idempotency_claim_for(keys_, once);
        envelope e = addressed(m, std::move(recipients), excluding);
        if (e.recipients.empty()) {
            if (done) done({}, {send_outcome::sent, once.result});
            return;
        }
        auto finish = [this, claim, once, done = std::move(done)](std::error_code ec, broker::claim_result c) mutable {
            detail::finish_idempotent(broker_, claim, once, ec, std::move(c), std::move(done));
        };
        if (!e.to_everyone() && options_.sync && wants_sync(m))
            router_.route_once(std::move(e), claim, std::move(finish));
        else
            broker_.idempotent_publish(claim, keys_.ws(), serialize(e), std::move(finish));
    }

    /// Closes the connections of `ids` wherever they are, with `code` and
    /// `reason` (see disconnect.hpp: Node servers close with 1000). Throws
    /// std::invalid_argument for a code or reason disconnect_event refuses.
    /// `done` learns when the broker took the event.
    void disconnect(std::vector<std::string> ids, std::uint16_t code = close_code::normal, std::string reason = {},
                    broker::completion done = {}) {
        publish(envelope{disconnect_event(code, std::move(reason)), std::move(ids), {}, {}}, std::move(done));
    }

    /// Asks the cluster whether `ids` are online: `done(ec, counts)`, per id
    /// its open sockets in the cluster, -1 when a Node server holds it
    /// (online, count unknown), 0 when offline.
    void presence(std::vector<std::string> const& ids, broker::counts_handler done) {
        broker_.presence_query(keys_, ids, std::move(done));
    }

    Broker& broker() noexcept { return broker_; }
    mesa::keys const& keys() const noexcept { return keys_; }

private:
    void publish(envelope const& e, broker::completion done = {}) {
        broker_.publish(keys_.ws(), serialize(e), std::move(done));
    }

    void report(std::string const& what) {
        if (on_error_) on_error_(what);
    }

    options options_;
    mesa::keys keys_;
    Broker broker_;
    detail::offline_router<Broker> router_;
    std::function<void(std::string const&)> on_error_;
};

}  // namespace mesa
