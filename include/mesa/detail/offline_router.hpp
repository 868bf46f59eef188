#pragma once
// Routing of a send to ids when sync is on, shared by the server's sync
// feature and the dispatcher: ids in the connected set get the message on the
// `ws` channel, the others get it appended to their backlog.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <mesa/envelope.hpp>
#include <mesa/keys.hpp>
#include <mesa/message.hpp>

namespace mesa::detail {

template <class Broker>
class offline_router {
public:
    struct events {
        /// Sends to the ids found online.
        std::function<void(envelope const&)> publish;
        std::function<void(std::string const& what)> on_error;
        /// `dropped` oldest entries of `id`'s backlog made room for a new one.
        std::function<void(std::string const& id, std::int64_t dropped)> on_overflow;
        std::function<void(message const&, std::vector<std::string> const& ids)> on_undeliverable;
        std::function<void()> on_stored;
    };

    offline_router(Broker& broker, mesa::keys keys, std::size_t max_backlog, events ev)
        : broker_(&broker), keys_(std::move(keys)), max_backlog_(max_backlog), events_(std::move(ev)) {}
    offline_router(offline_router&&) = default;
    ~offline_router() {
        if (alive_) *alive_ = false;
    }

    std::size_t max_backlog() const noexcept { return max_backlog_; }

    /// Delivers `e` (whose recipients are ids, not "*") with sync semantics.
    void route(envelope e) {
        auto ids = e.recipients;
        broker_->set_contains(
            keys_.connected_clients(), ids,
            [this, e = std::move(e), alive = alive_](std::error_code ec, std::vector<bool> online) mutable {
                if (!*alive) return;
                if (ec) {
                    // Without the connected set, publishing is the only way not to lose it.
                    error("sync: cannot tell who is online (" + ec.message() + "); sending without sync");
                    publish(e);
                    return;
                }
                split(std::move(e), online);
            });
    }

private:
    void split(envelope e, std::vector<bool> const& online) {
        std::vector<std::string> offline;
        std::vector<std::string> reachable;
        for (std::size_t i = 0; i < e.recipients.size(); ++i)
            (i < online.size() && online[i] ? reachable : offline).push_back(e.recipients[i]);
        if (!offline.empty()) store(e.msg, offline);
        if (!reachable.empty()) {
            e.recipients = std::move(reachable);
            publish(e);
        }
    }

    void store(message const& m, std::vector<std::string> const& ids) {
        message stored = m;
        stored.s.reset();
        auto const text = serialize(stored, audience::service);
        for (auto const& id : ids) {
            broker_->backlog_append(keys_.undelivered_messages(), id, text, max_backlog_,
                                    [this, id, alive = alive_](std::error_code ec, std::int64_t dropped) {
                                        if (!*alive) return;
                                        if (ec) {
                                            error("sync: message for offline " + id + " not stored: " + ec.message());
                                            return;
                                        }
                                        if (events_.on_stored) events_.on_stored();
                                        if (dropped <= 0) return;
                                        error("sync: backlog of " + id + " full, dropped the " +
                                              std::to_string(dropped) + " oldest message(s)");
                                        if (events_.on_overflow) events_.on_overflow(id, dropped);
                                    });
        }
        if (events_.on_undeliverable) events_.on_undeliverable(m, ids);
    }

    void publish(envelope const& e) { events_.publish(e); }

    void error(std::string const& what) {
        if (events_.on_error) events_.on_error(what);
    }

    Broker* broker_;
    mesa::keys keys_;
    std::size_t max_backlog_;
    events events_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mesa::detail
