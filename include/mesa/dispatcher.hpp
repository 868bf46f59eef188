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

#include <mesa/detail/offline_router.hpp>
#include <mesa/envelope.hpp>
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

    /// Closes the connections of `ids` (code 1000) wherever they are.
    void disconnect(std::vector<std::string> ids) {
        message event(opcode::internal_event, {});
        event.t = "DISCONNECT_CLIENT";
        publish(envelope{std::move(event), std::move(ids), {}, {}});
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
