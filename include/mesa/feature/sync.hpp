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
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <mesa/close_code.hpp>
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
            take_backlog(c);
        }

        // Messages stored for our ids while this instance was counted out of
        // the cluster (reaped, or the broker lost its state) go to one of
        // each id's clients now.
        void on_registered_again() {
            if (!options_.enabled) return;
            std::unordered_set<std::string> seen;
            for (auto const& c : server_->clients()) {
                if (c->id().empty() || !c->is_open() || holding_.count(c.get())) continue;
                if (!c->template state<authentication>().should_sync) continue;
                if (seen.insert(c->id()).second) take_backlog(*c);
            }
        }

        void on_close(client& c, std::uint16_t, std::string const&) { holding_.erase(&c); }

        /// While `c`'s backlog is being taken and redelivered, live messages
        /// for it wait behind it (bounded by max_backlog; past it the client
        /// is closed with 4002), so it never sees a newer one before an older.
        template <class Frame>
        bool hold(client& c, message const& m, Frame const& f) {
            if (releasing_) return false;
            auto it = holding_.find(&c);
            if (it == holding_.end()) return false;
            if (options_.max_backlog && it->second.size() >= options_.max_backlog) {
                server_->report("sync: more live messages than max_backlog waited behind the redelivery",
                                c.shared_from_this());
                server_->close(c, close_code::backlog_exceeded, "send backlog exceeded");
                holding_.erase(it);
                return true;
            }
            it->second.push_back({m, f});
            return true;
        }

    private:
        // Marks `c` online before this is called (authentication does), so a
        // message sent meanwhile is either in the backlog taken here or
        // published to `c`, where it waits behind the backlog.
        void take_backlog(client& c) {
            auto self = c.shared_from_this();
            bool const wanted = c.template state<authentication>().should_sync;
            if (wanted) holding_[&c];
            server_->broker().backlog_take(
                server_->keys().undelivered_messages(), c.id(),
                [this, weak = std::weak_ptr<client>(self), id = c.id(), wanted, alive = std::weak_ptr<bool>(alive_)](
                    std::error_code ec, std::vector<std::string> texts) {
                    if (alive.expired()) return;
                    auto c = weak.lock();
                    if (ec) server_->report("sync: cannot take the backlog (" + ec.message() + ")", c);
                    if (!wanted) return;
                    if (!c || !c->is_open()) {
                        // Gone before its backlog arrived: keep it for next time,
                        // before anything stored meanwhile.
                        put_back(id, texts, 0);
                        return;
                    }
                    redeliver(c, numbered(texts, c), texts);
                });
        }

        /// Puts `texts[from..]` back at the front of `id`'s backlog, in order.
        void put_back(std::string const& id, std::vector<std::string> const& texts, std::size_t from) {
            for (std::size_t i = texts.size(); i > from; --i)
                server_->broker().backlog_prepend(server_->keys().undelivered_messages(), id, texts[i - 1],
                                                  options_.max_backlog);
        }

        /// Sends what waited behind `c`'s redelivery, in order.
        void release(client& c) {
            auto it = holding_.find(&c);
            if (it == holding_.end()) return;
            auto held = std::move(it->second);
            holding_.erase(it);
            for (auto const& h : held) server_->deliver(c, h.msg, h.f);
        }

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

        void redeliver(client_ptr const& c, std::vector<message> messages, std::vector<std::string> texts) {
            if (!messages.empty()) {
                if constexpr (Server::template has<middleware>)
                    server_->template feature<middleware>().redelivering(messages, c);
            }
            if (options_.redelivery_interval.count() <= 0 || messages.size() <= 1) {
                send_unheld(*c, messages);
                redelivered_ += messages.size();
                release(*c);
                return;
            }
            auto run = std::make_shared<paced_run>(server_->context());
            run->who = c;
            run->id = c->id();
            run->messages = std::move(messages);
            run->texts = std::move(texts);
            pace(run);
        }

        void send_unheld(client& c, std::vector<message> const& messages) {
            releasing_ = true;
            for (auto const& m : messages) c.send(m);
            releasing_ = false;
        }

        // One redelivery in progress: its own timer, alive only while it runs.
        struct paced_run {
            explicit paced_run(asio::io_context& ioc) : timer(ioc) {}
            asio::steady_timer timer;
            std::weak_ptr<client> who;
            std::string id;
            std::vector<message> messages;
            std::vector<std::string> texts;  // as stored, to put back what was not sent
            std::size_t next = 0;
        };

        void pace(std::shared_ptr<paced_run> const& run) {
            auto c = run->who.lock();
            if (!c || !c->is_open()) {
                // Cut short: what was not sent waits for the next authentication.
                if (run->texts.size() == run->messages.size()) put_back(run->id, run->texts, run->next);
                return;
            }
            send_unheld(*c, {run->messages[run->next++]});
            ++redelivered_;
            if (run->next >= run->messages.size()) return release(*c);
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
        struct held {
            message msg;
            typename Server::frame f;
        };
        // Clients whose backlog is being redelivered, with what waits behind it.
        std::unordered_map<client*, std::vector<held>> holding_;
        bool releasing_ = false;  // the redelivery itself is sending
        // Paced runs own their timers; this tells them the component is gone.
        std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    };
};

}  // namespace mesa
