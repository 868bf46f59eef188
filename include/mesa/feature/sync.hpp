#pragma once
// sync: messages sent to ids that are offline everywhere are kept in the
// broker (`undelivered_messages`, a JSON array per id, as Node dispatchers
// store it) and redelivered, numbered s = 1..n in order, when that id next
// authenticates; one per `redelivery_interval` (0: all at once). A message
// with `sync = false` is never stored; a client that authenticates with
// `shouldSync: false` has its backlog dropped. Each id's backlog is bounded
// by `max_backlog`: the oldest entries go first, and every drop is reported
// (on_backlog_overflow and the error event).
//
// Needs mesa::authentication (ids come from it).
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <mesa/detail/offline_router.hpp>
#include <mesa/envelope.hpp>
#include <mesa/feature/authentication.hpp>
#include <mesa/feature/hooks.hpp>
#include <mesa/parse.hpp>

namespace mesa {

struct middleware;

struct sync {
    struct options {
        bool enabled = true;
        std::chrono::milliseconds redelivery_interval{0};
        // Enough for a long offline spell of a chat user; bounds Redis memory
        // per id. 0: unbounded.
        std::size_t max_backlog = 1000;
    };
    struct state {};

    template <class Server>
    class component : public feature::hooks {
        static_assert(Server::template has<authentication>,
                      "mesa::sync needs mesa::authentication in the server's features");

    public:
        using client = typename Server::client;
        using client_ptr = typename Server::client_ptr;
        /// Told of every backlog entry dropped for lack of room.
        using overflow_handler = std::function<void(std::string const& id, std::int64_t dropped)>;

        component(Server& server, options const& o)
            : server_(&server),
              options_(o),
              router_(server.broker(), server.keys(), o.max_backlog,
                      {[this](envelope const& e) { server_->publish(e); },
                       [this](std::string const& what) { server_->report(what); },
                       [this](std::string const& id, std::int64_t dropped) { this->overflowed(id, dropped); },
                       [this](message const& m, std::vector<std::string> const& ids) { this->undeliverable(m, ids); },
                       [this] { ++this->stored_; }}) {}

        void on_backlog_overflow(overflow_handler h) { on_overflow_ = std::move(h); }

        /// Messages stored for offline ids, and redelivered, by this server.
        std::uint64_t stored() const noexcept { return stored_; }
        std::uint64_t redelivered() const noexcept { return redelivered_; }

        bool on_send(envelope& e) {
            if (!options_.enabled || !wants_sync(e.msg)) return false;
            router_.route(std::move(e));
            return true;
        }

        void on_authenticated(client& c) {
            if (!options_.enabled) return;
            auto self = c.shared_from_this();
            bool const wanted = c.template state<authentication>().should_sync;
            server_->broker().backlog_take(server_->keys().undelivered_messages(), c.id(),
                                           [this, weak = std::weak_ptr<client>(self), id = c.id(), wanted](
                                               std::error_code ec, std::vector<std::string> texts) {
                                               auto c = weak.lock();
                                               if (ec) {
                                                   server_->report(
                                                       "sync: cannot take the backlog (" + ec.message() + ")", c);
                                                   return;
                                               }
                                               if (!wanted || texts.empty()) return;
                                               if (!c || !c->is_open()) {
                                                   // Gone before its backlog arrived: keep it for next time
                                                   // (after anything stored meanwhile).
                                                   router_.restore(id, std::move(texts));
                                                   return;
                                               }
                                               redeliver(c, numbered(texts, c));
                                           });
        }

    private:
        void undeliverable(message const& m, std::vector<std::string> const& ids) {
            if constexpr (Server::template has<middleware>)
                server_->template feature<middleware>().undeliverable_message_sent(m, ids);
        }

        void overflowed(std::string const& id, std::int64_t dropped) {
            if (on_overflow_) server_->guarded(nullptr, "backlog overflow handler", [&] { on_overflow_(id, dropped); });
        }

        std::vector<message> numbered(std::vector<std::string> const& texts, client_ptr const& c) {
            std::vector<message> out;
            out.reserve(texts.size());
            for (auto const& t : texts) {
                auto parsed = parse(t);
                if (!parsed) {
                    server_->report("sync: unreadable stored message skipped: " + parsed.error().reason, c);
                    continue;
                }
                message m = std::move(parsed.value());
                m.sync.reset();
                m.s = static_cast<std::int64_t>(out.size() + 1);
                out.push_back(std::move(m));
            }
            return out;
        }

        void redeliver(client_ptr const& c, std::vector<message> messages) {
            if constexpr (Server::template has<middleware>)
                server_->template feature<middleware>().redelivering(messages, c);
            if (options_.redelivery_interval.count() <= 0) {
                for (auto const& m : messages) c->send(m);
                redelivered_ += messages.size();
                return;
            }
            auto run = std::make_shared<paced_run>(server_->context());
            run->who = c;
            run->messages = std::move(messages);
            pace(run);
        }

        // One redelivery in progress: its own timer, alive only while it runs.
        struct paced_run {
            explicit paced_run(asio::io_context& ioc) : timer(ioc) {}
            asio::steady_timer timer;
            std::weak_ptr<client> who;
            std::vector<message> messages;
            std::size_t next = 0;
        };

        void pace(std::shared_ptr<paced_run> const& run) {
            auto c = run->who.lock();
            if (!c || !c->is_open() || run->next >= run->messages.size()) return;
            c->send(run->messages[run->next++]);
            ++redelivered_;
            if (run->next >= run->messages.size()) return;
            run->timer.expires_after(options_.redelivery_interval);
            run->timer.async_wait([this, run, alive = std::weak_ptr<bool>(alive_)](std::error_code ec) {
                if (!ec && !alive.expired()) pace(run);
            });
        }

        Server* server_;
        options options_;
        detail::offline_router<typename Server::broker_type> router_;
        overflow_handler on_overflow_;
        std::uint64_t stored_ = 0;
        std::uint64_t redelivered_ = 0;
        // Paced runs own their timers; this tells them the component is gone.
        std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    };
};

}  // namespace mesa
