#pragma once
// Routing of a send to ids when sync is on, shared by the server's sync
// feature and the dispatcher: one atomic step at the broker (sync_route)
// publishes the message to the ids online and stores it for the others, so
// no message falls between "is it online?" and "append"; messages for ids
// held by our instances stay in their outboxes until a socket confirms them.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <mesa/broker/completion.hpp>
#include <mesa/envelope.hpp>
#include <mesa/keys.hpp>
#include <mesa/message.hpp>

namespace mesa::detail {

template <class Broker>
class offline_router {
public:
    struct events {
        std::function<void(std::string const& what)> on_error;
        /// `dropped` oldest entries of `id`'s backlog or outbox made room for a new one.
        std::function<void(std::string const& id, std::int64_t dropped)> on_overflow;
        std::function<void(message const&, std::vector<std::string> const& ids)> on_undeliverable;
        std::function<void()> on_stored;
    };

    offline_router(Broker& broker, mesa::keys keys, std::size_t max_backlog, std::string origin, events ev)
        : broker_(&broker),
          keys_(std::move(keys)),
          max_backlog_(max_backlog),
          origin_(std::move(origin)),
          events_(std::move(ev)) {}
    offline_router(offline_router&&) = default;
    ~offline_router() {
        if (alive_) *alive_ = false;
    }

    std::size_t max_backlog() const noexcept { return max_backlog_; }

    /// Delivers `e` (whose recipients are ids, not "*") with sync semantics;
    /// `done` learns when the broker took it, or why it could not (then
    /// nothing was published or stored: the caller may retry).
    void route(envelope e, std::function<void(std::error_code)> done = {}) {
        message stored = e.msg;
        stored.s.reset();
        auto ids = e.recipients;
        broker_->sync_route(keys_, serialize(stored, audience::service), ids, max_backlog_, origin_,
                            [this, e = std::move(e), done = std::move(done), alive = alive_](
                                std::error_code ec, broker::route_result r) mutable {
                                if (!*alive) return;
                                if (ec) {
                                    error("sync: message not taken by the broker (" + ec.message() + ")");
                                } else {
                                    routed(std::move(e), std::move(r));
                                }
                                if (done) done(ec);
                            });
    }

    /// As route, with `claim` claimed at the broker in the same step
    /// (idempotent_route): `done` learns what the claim found; the message
    /// went out only when it was `claimed` and `ec` is not set.
    void route_once(envelope e, broker::idempotency_claim const& claim, broker::claim_handler done) {
        message stored = e.msg;
        stored.s.reset();
        auto ids = e.recipients;
        broker_->idempotent_route(keys_, claim, serialize(stored, audience::service), ids, max_backlog_, origin_,
                                  [this, e = std::move(e), done = std::move(done), alive = alive_](
                                      std::error_code ec, broker::claim_result c, broker::route_result r) mutable {
                                      if (!*alive) return;
                                      if (ec)
                                          error("sync: message not taken by the broker (" + ec.message() + ")");
                                      else if (c.status == broker::claim_result::state::claimed)
                                          routed(std::move(e), std::move(r));
                                      done(ec, std::move(c));
                                  });
    }

private:
    void routed(envelope e, broker::route_result r) {
        for (auto const& [id, dropped] : r.dropped) {
            error("sync: backlog of " + id + " full, dropped the " + std::to_string(dropped) + " oldest message(s)");
            if (events_.on_overflow) events_.on_overflow(id, dropped);
        }
        for (auto const& id : r.failed) error("sync: the stored backlog of " + id + " is unreadable; message not kept");
        if (!r.stored.empty()) {
            for (std::size_t i = 0; i < r.stored.size(); ++i)
                if (events_.on_stored) events_.on_stored();
            if (events_.on_undeliverable) events_.on_undeliverable(e.msg, r.stored);
        }
    }

    void error(std::string const& what) {
        if (events_.on_error) events_.on_error(what);
    }

    Broker* broker_;
    mesa::keys keys_;
    std::size_t max_backlog_;
    std::string origin_;
    events events_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mesa::detail
