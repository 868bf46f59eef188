#pragma once
// sync: a message for ids is delivered now to their sockets wherever they are
// connected, or kept in the broker and redelivered, numbered s = 1..n in
// order, when the id next authenticates; one per `redelivery_interval` (0: all
// at once). A message with `sync = false` is never kept; a client that
// authenticates with `shouldSync: false` has its backlog dropped.
//
// What is kept (DESIGN.md, "Delivery guarantees"):
// - "online? else store" is one atomic step at the broker, and authentication
//   marks the id online before its backlog is taken, so nothing falls between;
// - a message sent to an id held by our instances stays in that id's outbox
//   until one of its sockets confirms it; a redelivered backlog moves into the
//   outbox too. Confirmation needs no new client code: every client answers
//   each op 1 with an op 11, in order, so sync counts the op 1s sent on each
//   connection (its own and the heartbeat's), sends one after each batch it
//   delivers, and an op 11 confirms everything sent before its op 1. When the
//   id's last socket is gone, the unconfirmed go back first in its backlog;
// - while a backlog is redelivered, live messages for that socket wait behind it;
// - an id whose redeliveries go unconfirmed `max_attempts` times in a row has
//   its backlog removed and reported (on_backlog_overflow, the error event).
// Delivery is therefore at least once: a socket that closes before its op 11
// reached us gets those messages again at the next authentication (and both
// tabs of one user each get a live message once). Messages that Node
// dispatchers store keep the reference's semantics: stored only for ids
// offline, published to online ones without an outbox.
//
// Each id's backlog and outbox are bounded by `max_backlog`: the oldest go
// first, and every drop is reported.
//
// Needs mesa::authentication (ids come from it).
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <mesa/broker/completion.hpp>
#include <mesa/close_code.hpp>
#include <mesa/detail/offline_router.hpp>
#include <mesa/envelope.hpp>
#include <mesa/feature/authentication.hpp>
#include <mesa/feature/hooks.hpp>
#include <mesa/opcode.hpp>
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
        // Redeliveries of an id's backlog that no socket confirms, in a row,
        // before the backlog is given up (reported, not redelivered). 0: never.
        std::size_t max_attempts = 10;
        // A socket sent messages from an outbox gets one op 1 per this much
        // time, whose op 11 confirms them all: confirmations cost a client
        // at most 10 frames a second, well under the rate limit. 0: at once.
        std::chrono::milliseconds confirm_interval{100};
    };
    struct state {
        std::uint32_t pings = 0;  // op 1 sent on this connection
        std::uint32_t acks = 0;   // op 11 received on it
        // Outbox seqs sent here, each with the number of the op 1 whose op 11 confirms it.
        std::vector<std::pair<std::uint32_t, std::int64_t>> unconfirmed;
        // Hash of the id whose backlog this connection took (0: none): an op 2
        // again for the same id does not redeliver.
        std::size_t took_for = 0;
    };

    template <class Server>
    class component : public feature::hooks {
        static_assert(Server::template has<authentication>,
                      "mesa::sync needs mesa::authentication in the server's features");

    public:
        using client = typename Server::client;
        using client_ptr = typename Server::client_ptr;
        /// Told of every backlog entry dropped for lack of room or given up.
        using overflow_handler = std::function<void(std::string const& id, std::int64_t dropped)>;

        component(Server& server, options const& o)
            : server_(&server),
              options_(o),
              router_(server.broker(), server.keys(), o.max_backlog, server.instance_id(),
                      {[this](std::string const& what) { server_->report(what); },
                       [this](std::string const& id, std::int64_t dropped) { this->overflowed(id, dropped); },
                       [this](message const& m, std::vector<std::string> const& ids) { this->undeliverable(m, ids); },
                       [this] { ++this->stored_; }}) {}

        void on_backlog_overflow(overflow_handler h) { on_overflow_ = std::move(h); }

        /// Messages stored for offline ids, and redelivered, by this server.
        std::uint64_t stored() const noexcept { return stored_; }
        std::uint64_t redelivered() const noexcept { return redelivered_; }

        template <class Done>
        bool on_send(envelope& e, Done& done) {
            if (!options_.enabled || !wants_sync(e.msg)) return false;
            router_.route(e, [this, e, done = std::move(done)](std::error_code ec) {
                // Without the broker, this gateway's own clients still get it
                // (as a broadcast reaches them); the caller learns it was
                // neither stored nor sent further, and may retry. Taken but
                // unconfirmed, it went out through the broker already.
                if (ec && ec != broker::condition::taken_unconfirmed) server_->deliver_routed(e);
                if (done) done(ec);
            });
            return true;
        }

        /// An idempotent send: nothing reaches even this server's clients
        /// unless the broker claimed the key (without it, a repeat could not
        /// be told from a first send).
        template <class Done>
        bool on_send_once(envelope& e, broker::idempotency_claim const& claim, Done& done) {
            if (!options_.enabled || !wants_sync(e.msg)) return false;
            router_.route_once(e, claim, std::move(done));
            return true;
        }

        void on_authenticated(client& c) {
            if (!options_.enabled) return;
            auto& s = c.template state<sync>();
            auto const id = std::hash<std::string>()(c.id()) | 1;  // never 0
            if (s.took_for == id) return;
            s.took_for = id;
            take_backlog(c);
        }

        // Messages stored for our ids while this instance was counted out of
        // the cluster (reaped, or the broker lost its state), and messages
        // published while our subscription was being renewed (they wait in
        // their outboxes), go to each client now, in order, before anything
        // newer (at least once: some may have arrived already).
        void on_registered_again() { catch_up(); }
        void on_resubscribed() { catch_up(); }

        template <class Client>
        void on_parsed(Client& c, message const& m) {
            if (m.op != opcode::heartbeat_ack || !options_.enabled) return;
            auto& s = c.template state<sync>();
            ++s.acks;
            std::vector<std::int64_t> confirmed;
            auto it = s.unconfirmed.begin();
            // Wrapping counters: "sent before the acknowledged op 1" is a signed distance.
            for (; it != s.unconfirmed.end() && static_cast<std::int32_t>(s.acks - it->first) >= 0; ++it)
                confirmed.push_back(it->second);
            if (confirmed.empty()) return;
            s.unconfirmed.erase(s.unconfirmed.begin(), it);
            server_->broker().sync_confirm(server_->keys(), c.id(), confirmed);
        }

        template <class Client>
        void on_sent(Client& c, message const& m) {
            if (m.op == opcode::heartbeat) ++c.template state<sync>().pings;
        }

        /// Outbox message `seq` was written to `c`: the next op 1's answer confirms it.
        void on_outbox_sent(client& c, std::int64_t seq) {
            if (options_.enabled) sent_from_outbox(c, seq);
        }

        void on_close(client& c, std::uint16_t, std::string const&) {
            holding_.erase(&c);
            retake_.erase(&c);
        }

        void on_start() { confirm_timer_ = std::make_unique<asio::steady_timer>(server_->context()); }
        void on_stop() {
            if (confirm_timer_) confirm_timer_->cancel();
        }

        /// While `c`'s backlog is being taken and redelivered, live messages
        /// for it wait behind it (bounded by max_backlog; past it the client
        /// is closed with 4002), so it never sees a newer one before an older.
        template <class Frame>
        bool hold(client& c, message const& m, Frame const& f, std::int64_t seq) {
            if (releasing_ || m.op != opcode::dispatch) return false;
            auto it = holding_.find(&c);
            if (it == holding_.end()) return false;
            if (options_.max_backlog && it->second.waiting.size() >= options_.max_backlog) {
                server_->report("sync: more live messages than max_backlog waited behind the redelivery",
                                c.shared_from_this());
                server_->close(c, close_code::backlog_exceeded, "send backlog exceeded");
                holding_.erase(it);
                return true;
            }
            it->second.waiting.push_back({m, f, seq});
            return true;
        }

    private:
        void catch_up() {
            if (!options_.enabled) return;
            for (auto const& c : server_->clients()) {
                bool const retake = retake_.erase(c.get()) > 0;
                if (c->id().empty() || !c->is_open() || (holding_.count(c.get()) && !retake)) continue;
                if (c->template state<authentication>().should_sync) take_backlog(*c);
            }
        }

        // Marks `c` online before this is called (authentication does), so a
        // message sent meanwhile is either in the backlog taken here or
        // published to `c`, where it waits behind the backlog.
        void take_backlog(client& c) {
            auto self = c.shared_from_this();
            bool const wanted = c.template state<authentication>().should_sync;
            if (wanted) holding_[&c];  // live messages wait from now on
            server_->broker().sync_take(
                server_->keys(), c.id(), wanted ? options_.max_attempts : 0,
                [this, weak = std::weak_ptr<client>(self), id = c.id(), wanted, alive = std::weak_ptr<bool>(alive_)](
                    std::error_code ec, broker::take_result taken) {
                    if (alive.expired()) return;
                    auto c = weak.lock();
                    if (ec) {
                        server_->report("sync: cannot take the backlog (" + ec.message() + ")", c);
                        // Lost with the broker: live messages keep waiting, and
                        // the take is repeated once the broker is back.
                        if (wanted && c && c->is_open() && !server_->broker().connected()) {
                            retake_.insert(c.get());
                            return;
                        }
                    }
                    if (taken.given_up) {
                        server_->report("sync: the backlog of " + id + " was redelivered " +
                                            std::to_string(options_.max_attempts) +
                                            " times without a confirmation; given up",
                                        c);
                        overflowed(id, static_cast<std::int64_t>(taken.messages.size()));
                        taken.messages.clear();
                    }
                    if (!wanted) {
                        // shouldSync: false drops the backlog (the reference's
                        // behaviour); the outbox stays for the id's other sockets.
                        confirm_backlog(id, taken.messages);
                        return;
                    }
                    // A client gone meanwhile: its messages sit in the outbox,
                    // and go back to the backlog when the id's last socket goes.
                    if (!c || !c->is_open()) return;
                    redeliver(c, std::move(taken.messages));
                });
        }

        void confirm_backlog(std::string const& id, std::vector<broker::taken_message> const& messages) {
            std::vector<std::int64_t> seqs;
            for (auto const& m : messages)
                if (m.seq > 0 && !m.from_outbox) seqs.push_back(m.seq);
            if (!seqs.empty()) server_->broker().sync_confirm(server_->keys(), id, seqs);
        }

        void sent_from_outbox(client& c, std::int64_t seq) {
            auto& s = c.template state<sync>();
            s.unconfirmed.emplace_back(s.pings + 1, seq);
            if (auto it = holding_.find(&c); it != holding_.end()) it->second.sent.insert(seq);
            awaiting_ping_.push_back(c.weak_from_this());
            if (awaiting_ping_.size() > 1) return;
            // One op 1 after each batch: its answer confirms the whole batch.
            auto ping = [this, alive = std::weak_ptr<bool>(alive_)](std::error_code ec = {}) {
                if (ec || alive.expired()) return;
                message const beat(opcode::heartbeat, {});
                auto const f = server_->prepare(beat);
                for (auto const& weak : std::exchange(awaiting_ping_, {})) {
                    auto c = weak.lock();
                    if (!c || !c->is_open()) continue;
                    auto& s = c->template state<sync>();
                    // Once per client, and only if an op 1 is still owed to it.
                    if (!s.unconfirmed.empty() && s.unconfirmed.back().first == s.pings + 1)
                        server_->deliver(*c, beat, f);
                }
            };
            if (options_.confirm_interval.count() <= 0 || !confirm_timer_) return asio::post(server_->context(), ping);
            confirm_timer_->expires_after(options_.confirm_interval);
            confirm_timer_->async_wait(ping);
        }

        /// Sends what waited behind `c`'s redelivery, in order.
        void release(client& c) {
            auto it = holding_.find(&c);
            if (it == holding_.end()) return;
            auto held = std::move(it->second);
            holding_.erase(it);
            for (auto const& h : held.waiting) {
                // The redelivery took it from the outbox and sent it already.
                if (h.seq > 0 && held.sent.count(h.seq)) continue;
                server_->deliver(c, h.msg, h.f, h.seq);
            }
        }

        void undeliverable(message const& m, std::vector<std::string> const& ids) {
            if constexpr (Server::template has<middleware>)
                server_->template feature<middleware>().undeliverable_message_sent(m, ids);
        }

        void overflowed(std::string const& id, std::int64_t dropped) {
            if (on_overflow_) server_->guarded(nullptr, "backlog overflow handler", [&] { on_overflow_(id, dropped); });
        }

        struct numbered_message {
            message msg;
            std::int64_t seq;
        };

        std::vector<numbered_message> numbered(std::vector<broker::taken_message> const& taken, client_ptr const& c) {
            std::vector<numbered_message> out;
            out.reserve(taken.size());
            std::vector<std::int64_t> unreadable;
            for (auto const& t : taken) {
                auto parsed = parse(t.text);
                if (!parsed) {
                    server_->report("sync: unreadable stored message skipped: " + parsed.error().reason, c);
                    unreadable.push_back(t.seq);
                    continue;
                }
                message m = std::move(parsed.value());
                m.sync.reset();
                m.s = static_cast<std::int64_t>(out.size() + 1);
                out.push_back({std::move(m), t.seq});
            }
            if (!unreadable.empty()) server_->broker().sync_confirm(server_->keys(), c->id(), unreadable);
            return out;
        }

        void redeliver(client_ptr const& c, std::vector<broker::taken_message> taken) {
            auto messages = numbered(taken, c);
            if (!messages.empty()) {
                if constexpr (Server::template has<middleware>) {
                    std::vector<message> plain;
                    for (auto const& m : messages) plain.push_back(m.msg);
                    server_->template feature<middleware>().redelivering(plain, c);
                }
            }
            if (options_.redelivery_interval.count() <= 0 || messages.size() <= 1) {
                for (auto const& m : messages) send_unheld(*c, m);
                redelivered_ += messages.size();
                release(*c);
                return;
            }
            auto run = std::make_shared<paced_run>(server_->context());
            run->who = c;
            run->messages = std::move(messages);
            pace(run);
        }

        void send_unheld(client& c, numbered_message const& m) {
            releasing_ = true;
            c.send(m.msg);
            releasing_ = false;
            if (m.seq > 0) sent_from_outbox(c, m.seq);
        }

        // One redelivery in progress: its own timer, alive only while it runs.
        struct paced_run {
            explicit paced_run(asio::io_context& ioc) : timer(ioc) {}
            asio::steady_timer timer;
            std::weak_ptr<client> who;
            std::vector<numbered_message> messages;
            std::size_t next = 0;
        };

        // A run cut short by a close leaves the rest in the outbox: it goes
        // back to the backlog with the id's last socket.
        void pace(std::shared_ptr<paced_run> const& run) {
            auto c = run->who.lock();
            if (!c || !c->is_open()) return;
            send_unheld(*c, run->messages[run->next++]);
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
            std::int64_t seq;
        };
        // Clients whose backlog is being redelivered: what waits behind it,
        // and the outbox seqs the redelivery sent.
        struct holding {
            std::vector<held> waiting;
            std::unordered_set<std::int64_t> sent;
        };
        std::unordered_map<client*, holding> holding_;
        std::unordered_set<client*> retake_;                // holding, their take lost with the broker
        std::vector<std::weak_ptr<client>> awaiting_ping_;  // owed an op 1 (repeats allowed)
        std::unique_ptr<asio::steady_timer> confirm_timer_;
        bool releasing_ = false;  // the redelivery itself is sending
        // Paced runs own their timers; this tells them the component is gone.
        std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    };
};

}  // namespace mesa
