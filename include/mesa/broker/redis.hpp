#pragma once
// The Redis broker: the broker interface over a Redis server, under the exact
// schema of PROTOCOL.md, so that Node Mesa servers, dispatchers and portals
// sharing that Redis interoperate.
//
//   mesa::broker::redis broker{ioc.get_executor(), {"redis://:secret@10.0.0.5:6379/2"}};
//   broker.publish("ws", R"({"message":{"op":0,"d":{}},"recipients":["*"]})");
//
// Two connections: one pipelines commands (replies matched in order), one
// holds the subscriptions (renewed after every reconnection). Both reconnect
// with backoff. While Redis is unreachable nothing throws: operations complete
// with redis_errc::disconnected, and outages, recoveries and the publications
// that could not be sent go to options::on_log.
//
// With Redis Sentinel (options::sentinels), the master is asked of the
// sentinels and followed through failovers (redis_sentinel.hpp):
//
//   mesa::broker::redis::options o;
//   o.sentinels = {"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"};
//   o.sentinel_master = "mymaster";
//
// Over TLS (rediss://, or any address with options::tls set; the sentinels
// and the master they name alike), with <mesa/broker/redis_tls.hpp>, which
// needs OpenSSL (meson `mesa-tls`, CMake mesa::tls):
//
//   o.uri = "rediss://:secret@redis.example.com:6380";
//   o.tls = mesa::broker::redis_tls({/* ca_file, cert_file, key_file, server_name */});
//
// With options::replicas_to_acknowledge (with sentinels, by default every
// replica connected to the master), stores (sync_route, idempotent_route, backlog appends)
// complete once that many replicas have them (WAIT on a third connection, so
// nothing else waits behind it).
//
// Thread-safety: one broker belongs to the thread running its executor; call
// it only from there. Handlers run on that executor, never inline. Destroying
// the broker with operations in flight is safe: their handlers are not called.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <mesa/broker/completion.hpp>
#include <mesa/broker/detail/redis_backlog.hpp>
#include <mesa/broker/detail/redis_connection.hpp>
#include <mesa/broker/detail/redis_error.hpp>
#include <mesa/broker/detail/redis_resp.hpp>
#include <mesa/broker/detail/redis_scripts.hpp>
#include <mesa/broker/detail/redis_sentinel.hpp>
#include <mesa/broker/detail/redis_stream.hpp>
#include <mesa/broker/detail/redis_uri.hpp>
#include <mesa/keys.hpp>

namespace mesa::broker {

class redis {
public:
    struct options {
        /// redis://[[user]:password@]host[:port][/db], rediss://... (TLS: needs
        /// `tls`), unix:///path[?db=N&password=P] or /path.
        std::string uri = "redis://127.0.0.1:6379";
        /// TLS to Redis (and to the sentinels), made by mesa::broker::redis_tls()
        /// of <mesa/broker/redis_tls.hpp>: certificate and host-name verification,
        /// client certificate. Null: plain sockets, and rediss:// is refused.
        std::shared_ptr<detail::redis_stream_factory const> tls;
        /// First retry after a failed connection attempt; doubles up to reconnect_max.
        std::chrono::milliseconds reconnect_initial{100};
        /// Longest pause between attempts: an outage is noticed gone within it.
        std::chrono::milliseconds reconnect_max{5000};
        /// A connection attempt (connect, AUTH, SELECT) taking longer fails.
        std::chrono::milliseconds connect_timeout{5000};
        /// A Redis that is up but stops answering (SIGSTOP, a partition that drops
        /// packets): once the oldest command awaiting its reply on a connection has
        /// waited this long, that connection counts as lost (its commands fail with
        /// redis_errc::disconnected, connected() is false, it reconnects with
        /// backoff; with sentinels, the master is asked again). The subscription
        /// connection PINGs this often to check it; WAIT gets replica_timeout more.
        /// 0: off (commands wait for as long as the TCP connection lives).
        std::chrono::milliseconds command_timeout{5000};
        /// Commands sent but unanswered plus those waiting for a connection, per
        /// connection; past it operations fail with redis_errc::queue_full. A few
        /// seconds of heavy traffic: beyond that Redis is not keeping up.
        std::size_t max_pending_commands = 65536;
        /// Outages, recoveries and failures nobody else is told about (default: none).
        std::function<void(std::string)> on_log;

        /// Redis Sentinel: the sentinels, "host[:port]" (port 26379 when left
        /// out). Not empty: the master named sentinel_master is asked of them,
        /// checked with ROLE, and followed through failovers; `uri` is not used.
        std::vector<std::string> sentinels;
        /// The master's name in the sentinels' configuration (sentinel monitor <name> ...).
        std::string sentinel_master;
        /// AUTH for the sentinels (empty password: none; empty username: the default user).
        std::string sentinel_username, sentinel_password;
        /// AUTH and SELECT for the master found through the sentinels; without
        /// sentinels, when set they replace those of `uri`.
        std::string username, password;
        std::optional<int> db;

        /// Stores (sync_route, idempotent_route, backlog_append) complete only once this many
        /// replicas acknowledged them (WAIT); 0: when the master took them. Then a
        /// store a failover could lose completes with redis_errc::not_replicated.
        /// Unset: with sentinels, every replica of the master (as ROLE lists
        /// them; one that left counts for replica_grace), and at least one, so
        /// that whichever replica a failover promotes has it (waiting for fewer, a store acknowledged by one
        /// replica is lost when the sentinels promote another); without
        /// sentinels, 0 (a single Redis has no replica to wait for).
        std::optional<std::size_t> replicas_to_acknowledge;
        /// How long a store waits for the replicas' acknowledgement.
        std::chrono::milliseconds replica_timeout{1000};
        /// With replicas_to_acknowledge unset: how long a replica that left the
        /// master still counts (stores fail meanwhile). A failover takes the
        /// replica it promotes away first and moves the others later; the
        /// sentinels' down-after-milliseconds (30 s by default) is how long
        /// they take to call a lost replica down.
        std::chrono::milliseconds replica_grace{30000};

        /// Whether stores wait for replicas at all.
        bool waits_for_replicas() const noexcept {
            return replicas_to_acknowledge ? *replicas_to_acknowledge > 0 : !sentinels.empty();
        }
    };

    /// Connects at once (asynchronously). Throws std::invalid_argument on a bad
    /// uri, a bad sentinel address or sentinels without sentinel_master.
    explicit redis(asio::any_io_executor executor) : redis(std::move(executor), options()) {}
    redis(asio::any_io_executor executor, options const& opts)
        : state_(std::make_shared<state>(std::move(executor), opts)) {
        state_->start();
    }

    redis(redis const&) = delete;
    redis& operator=(redis const&) = delete;
    ~redis() { state_->stop(); }

    /// True while both connections (commands and subscriptions) are up.
    bool connected() const noexcept { return state_->commands_->ready() && state_->subscriber_->ready(); }

    /// Called each time the command connection comes back after an outage
    /// (not on the first connection): Redis may have restarted empty, so
    /// owners re-register what they keep there (ids, portal membership).
    void on_restored(std::function<void()> handler) { state_->restored_ = std::move(handler); }

    /// Called each time every subscription is active again after the
    /// subscription connection was lost (not on the first connection):
    /// publications made meanwhile were lost, as with Redis itself, so owners
    /// resend what they keep for that case (sync's outboxes).
    void on_resubscribed(std::function<void()> handler) { state_->resubscribed_ = std::move(handler); }

    /// Delivers every publication on `channel` to `handler` until the broker is
    /// destroyed, across reconnections (publications made while the
    /// subscription connection is down are lost, as with Redis itself). `done`
    /// learns when Redis confirmed the subscription, or disconnected when that
    /// attempt failed (the subscription stays and is renewed on reconnection).
    void subscribe(std::string const& channel, channel_handler handler, completion done = {}) {
        state_->subscribe(channel, std::move(handler), std::move(done));
    }

    /// PUBLISH; a publication that cannot be sent is reported to on_log, and
    /// to `done` (which learns when Redis took it).
    void publish(std::string const& channel, std::string payload, completion done = {}) {
        auto weak = std::weak_ptr<state>(state_);
        state_->commands_->send(
            detail::redis_command("PUBLISH", channel, payload),
            [weak, channel, done = std::move(done)](std::error_code ec, redisReply const* reply) {
                auto s = weak.lock();
                if (!s || s->stopped_) return;
                if (ec) s->log("PUBLISH to '" + channel + "' failed, publication dropped: " + describe(ec, reply));
                if (done) done(ec);
            });
    }

    void set_add(std::string const& key, std::string const& member, completion done = {}) {
        state_->send_simple("SADD", detail::redis_command("SADD", key, member), std::move(done));
    }

    void set_remove(std::string const& key, std::string const& member, completion done = {}) {
        state_->send_simple("SREM", detail::redis_command("SREM", key, member), std::move(done));
    }

    /// One SISMEMBER per member, pipelined; `done` gets them in order.
    void set_contains(std::string const& key, std::vector<std::string> const& members, contains_handler done) {
        if (members.empty()) {
            asio::post(state_->executor_, [weak = std::weak_ptr<state>(state_), done = std::move(done)] {
                if (auto s = weak.lock(); s && !s->stopped_ && done) done({}, {});
            });
            return;
        }
        struct gather {
            std::vector<bool> found;
            std::size_t remaining;
            std::error_code error;
            contains_handler done;
        };
        auto g =
            std::make_shared<gather>(gather{std::vector<bool>(members.size()), members.size(), {}, std::move(done)});
        for (std::size_t i = 0; i < members.size(); ++i) {
            state_->commands_->send(detail::redis_command("SISMEMBER", key, members[i]),
                                    state_->guard(
                                        [g, i](std::error_code ec, redisReply const* reply) {
                                            if (!ec && reply->type != REDIS_REPLY_INTEGER)
                                                ec = redis_errc::unexpected_reply;
                                            if (ec && !g->error) g->error = ec;
                                            if (!ec) g->found[i] = reply->integer != 0;
                                            if (--g->remaining == 0 && g->done) {
                                                if (g->error)
                                                    g->done(g->error, {});
                                                else
                                                    g->done({}, std::move(g->found));
                                            }
                                        },
                                        "SISMEMBER"));
        }
    }

    /// SMEMBERS, sorted (as broker::memory gives them).
    void set_members(std::string const& key, members_handler done) {
        state_->commands_->send(detail::redis_command("SMEMBERS", key),
                                state_->guard(
                                    [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                                        std::vector<std::string> members;
                                        if (!ec && reply->type != REDIS_REPLY_ARRAY) ec = redis_errc::unexpected_reply;
                                        if (!ec) {
                                            members.reserve(reply->elements);
                                            for (std::size_t i = 0; i < reply->elements; ++i)
                                                members.emplace_back(detail::redis_text(*reply->element[i]));
                                            std::sort(members.begin(), members.end());
                                        }
                                        if (done) done(ec, std::move(members));
                                    },
                                    "SMEMBERS"));
    }

    /// INCRBY (negative deltas decrement).
    void counter_add(std::string const& key, std::int64_t delta, completion done = {}) {
        state_->send_simple("INCRBY", detail::redis_command("INCRBY", key, std::to_string(delta)), std::move(done));
    }

    /// GET; a missing key counts 0.
    void counter_get(std::string const& key, count_handler done) {
        state_->commands_->send(detail::redis_command("GET", key),
                                state_->guard(
                                    [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                                        std::int64_t value = 0;
                                        if (!ec && reply->type == REDIS_REPLY_STRING) {
                                            auto const text = detail::redis_text(*reply);
                                            auto const [end, parse] =
                                                std::from_chars(text.data(), text.data() + text.size(), value);
                                            if (parse != std::errc() || end != text.data() + text.size())
                                                ec = redis_errc::unexpected_reply;
                                        } else if (!ec && reply->type != REDIS_REPLY_NIL) {
                                            ec = redis_errc::unexpected_reply;
                                        }
                                        if (done) done(ec, ec ? 0 : value);
                                    },
                                    "GET"));
    }

    /// Appends `message` (a JSON text, stored verbatim) to the JSON array under
    /// `hash`/`field`, atomically (one Lua script), dropping the oldest entries
    /// past `max_entries` (0: unbounded). `done` receives how many were dropped.
    /// Text that is not strict JSON (NaN, raw control characters...) is refused
    /// with server_error.
    void backlog_append(std::string const& hash, std::string const& field, std::string message, std::size_t max_entries,
                        count_handler done = {}) {
        state_->eval(script::backlog_append, {hash, field, std::move(message), std::to_string(max_entries)}, 1,
                     state_->guard(
                         [weak = std::weak_ptr<state>(state_), done = std::move(done)](std::error_code ec,
                                                                                       redisReply const* reply) {
                             if (!ec && reply->type != REDIS_REPLY_INTEGER) ec = redis_errc::unexpected_reply;
                             auto const dropped = ec ? 0 : static_cast<std::int64_t>(reply->integer);
                             weak.lock()->replicated(ec, [done, dropped](std::error_code ec) {
                                 if (done) done(ec, ec ? 0 : dropped);
                             });
                         },
                         "backlog append", !done));
    }

    /// Removes and returns the whole backlog of `hash`/`field`, atomically: the
    /// element JSON texts in append order, byte for byte as appended (or as
    /// written by a Node server).
    void backlog_take(std::string const& hash, std::string const& field, take_handler done) {
        state_->eval(script::backlog_take, {hash, field}, 1,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                             std::vector<std::string> messages;
                             if (!ec && reply->type == REDIS_REPLY_STRING)
                                 ec = detail::split_backlog(detail::redis_text(*reply), messages);
                             else if (!ec && reply->type != REDIS_REPLY_NIL)
                                 ec = redis_errc::unexpected_reply;
                             if (ec) messages.clear();
                             if (done) done(ec, std::move(messages));
                         },
                         "backlog take"));
    }

    // ---- exact presence (requirements.hpp), one Lua script each ----------------
    using socket_counts = std::vector<std::pair<std::string, std::int64_t>>;

    void presence_register(mesa::keys const& k, std::string const& instance, std::chrono::milliseconds ttl,
                           std::int64_t connections, socket_counts const& ids, count_handler done) {
        auto args = cluster_args(k, instance);
        args.push_back(std::to_string(std::max<std::int64_t>(1, ttl.count())));
        args.push_back(std::to_string(connections));
        for (auto const& [id, n] : ids) {
            args.push_back(id);
            args.push_back(std::to_string(n));
        }
        state_->eval(script::presence_register, std::move(args), cluster_keys,
                     integer_reply("presence register", std::move(done)));
    }

    void presence_change(mesa::keys const& k, std::string const& instance, std::int64_t epoch,
                         std::int64_t connections_delta, std::string const& id, std::int64_t sockets_delta,
                         count_handler done) {
        auto args = cluster_args(k, instance);
        args.push_back(std::to_string(epoch));
        args.push_back(std::to_string(connections_delta));
        args.push_back(id);
        args.push_back(std::to_string(sockets_delta));
        state_->eval(script::presence_change, std::move(args), cluster_keys,
                     integer_reply("presence change", std::move(done)));
    }

    void presence_admit(mesa::keys const& k, std::string const& instance, std::int64_t epoch, std::string const& id,
                        std::int64_t max_sockets, count_handler done) {
        auto args = cluster_args(k, instance);
        args.push_back(std::to_string(epoch));
        args.push_back(id);
        args.push_back(std::to_string(max_sockets));
        state_->eval(script::presence_admit, std::move(args), cluster_keys,
                     integer_reply("presence admit", std::move(done)));
    }

    void presence_renew(mesa::keys const& k, std::string const& instance, std::int64_t epoch,
                        std::chrono::milliseconds ttl, count_handler done) {
        auto args = cluster_args(k, instance);
        args.push_back(std::to_string(epoch));
        args.push_back(std::to_string(std::max<std::int64_t>(1, ttl.count())));
        state_->eval(script::presence_renew, std::move(args), cluster_keys,
                     integer_reply("presence renew", std::move(done)));
    }

    void presence_query(mesa::keys const& k, std::vector<std::string> const& ids, counts_handler done) {
        auto args = cluster_args(k, {});
        args.pop_back();  // no instance
        args.insert(args.end(), ids.begin(), ids.end());
        state_->eval(script::presence_query, std::move(args), cluster_keys,
                     state_->guard(
                         [done = std::move(done), n = ids.size()](std::error_code ec, redisReply const* reply) {
                             std::vector<std::int64_t> counts;
                             if (!ec && (reply->type != REDIS_REPLY_ARRAY || reply->elements != n))
                                 ec = redis_errc::unexpected_reply;
                             for (std::size_t i = 0; !ec && i < n; ++i) {
                                 if (reply->element[i]->type != REDIS_REPLY_INTEGER)
                                     ec = redis_errc::unexpected_reply;
                                 else
                                     counts.push_back(reply->element[i]->integer);
                             }
                             if (ec) counts.clear();
                             if (done) done(ec, std::move(counts));
                         },
                         "presence query"));
    }

    void presence_reap(mesa::keys const& k, members_handler done) {
        auto args = cluster_args(k, {});
        args.pop_back();  // no instance
        state_->eval(script::presence_reap, std::move(args), cluster_keys,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                             std::vector<std::string> reaped;
                             if (!ec && reply->type != REDIS_REPLY_ARRAY) ec = redis_errc::unexpected_reply;
                             if (!ec)
                                 for (std::size_t i = 0; i < reply->elements; ++i)
                                     reaped.emplace_back(detail::redis_text(*reply->element[i]));
                             if (done) done(ec, std::move(reaped));
                         },
                         "presence reap"));
    }

    void presence_withdraw(mesa::keys const& k, std::string const& instance, std::int64_t epoch, count_handler done) {
        auto args = cluster_args(k, instance);
        args.push_back(std::to_string(epoch));
        state_->eval(script::presence_withdraw, std::move(args), cluster_keys,
                     integer_reply("presence withdraw", std::move(done)));
    }

    // ---- lossless sync (requirements.hpp) ------------------------------------------
    void sync_route(mesa::keys const& k, std::string const& message, std::vector<std::string> const& ids,
                    std::size_t max_backlog, std::string const& origin, route_handler done) {
        auto args = cluster_args(k, k.ws());
        args.push_back(message);
        args.push_back(std::to_string(max_backlog));
        args.push_back(origin);
        args.insert(args.end(), ids.begin(), ids.end());
        state_->eval(script::sync_route, std::move(args), cluster_keys,
                     state_->guard(
                         [weak = std::weak_ptr<state>(state_), done = std::move(done)](std::error_code ec,
                                                                                       redisReply const* reply) {
                             route_result r;
                             if (!ec) ec = routed(*reply, r);
                             // Stored: complete once replicas have it (when asked to).
                             weak.lock()->replicated(ec, [done, r = std::move(r)](std::error_code ec) mutable {
                                 if (done) done(ec, std::move(r));
                             });
                         },
                         "sync route", !done));
    }

    // ---- idempotent sends (requirements.hpp): the key claimed in the same script
    void idempotent_route(mesa::keys const& k, idempotency_claim const& claim, std::string const& message,
                          std::vector<std::string> const& ids, std::size_t max_backlog, std::string const& origin,
                          route_once_handler done) {
        auto args = cluster_args(k, k.ws());
        args.insert(args.begin() + cluster_keys, claim.key);
        args.push_back(message);
        args.push_back(std::to_string(max_backlog));
        args.push_back(origin);
        args.push_back(claim.token);
        args.push_back(std::to_string(std::max<std::int64_t>(1, claim.in_flight_ttl.count())));
        args.insert(args.end(), ids.begin(), ids.end());
        state_->eval(script::idempotent_route, std::move(args), cluster_keys + 1,
                     state_->guard(
                         [weak = std::weak_ptr<state>(state_), done = std::move(done)](std::error_code ec,
                                                                                       redisReply const* reply) {
                             claim_result c;
                             route_result r;
                             if (!ec) ec = claimed(*reply, c);
                             if (!ec && c.status == claim_result::state::claimed) {
                                 if (reply->elements != 2) return done(redis_errc::unexpected_reply, {}, {});
                                 ec = routed(*reply->element[1], r);
                             }
                             if (ec || c.status != claim_result::state::claimed) return done(ec, c, {});
                             // Stored: complete once replicas have it (when asked to).
                             weak.lock()->replicated(
                                 {}, [done, c = std::move(c), r = std::move(r)](std::error_code ec) mutable {
                                     done(ec, std::move(c), std::move(r));
                                 });
                         },
                         "idempotent route"));
    }

    void idempotent_publish(idempotency_claim const& claim, std::string const& channel, std::string payload,
                            claim_handler done) {
        state_->eval(script::idempotent_publish,
                     {claim.key, channel, std::move(payload), claim.token,
                      std::to_string(std::max<std::int64_t>(1, claim.in_flight_ttl.count()))},
                     1,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                             claim_result c;
                             if (!ec) ec = claimed(*reply, c);
                             done(ec, std::move(c));
                         },
                         "idempotent publish"));
    }

    /// Records `result` under the claimed key for `ttl`, unless another
    /// attempt holds the key now.
    void idempotency_settle(idempotency_claim const& claim, std::string const& result, std::chrono::milliseconds ttl,
                            completion done = {}) {
        state_->eval(script::idempotency_settle,
                     {claim.key, claim.token, result, std::to_string(std::max<std::int64_t>(1, ttl.count()))}, 1,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const*) {
                             if (done) done(ec);
                         },
                         "idempotency settle", !done));
    }

    /// Frees the claimed key, unless another attempt holds it now.
    void idempotency_release(idempotency_claim const& claim, completion done = {}) {
        state_->eval(script::idempotency_release, {claim.key, claim.token}, 1,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const*) {
                             if (done) done(ec);
                         },
                         "idempotency release", !done));
    }

    void sync_take(mesa::keys const& k, std::string const& id, std::size_t max_attempts, sync_take_handler done) {
        auto args = cluster_args(k, id);
        args.push_back(std::to_string(max_attempts));
        state_->eval(script::sync_take, std::move(args), cluster_keys,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                             take_result r;
                             if (!ec && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1))
                                 ec = redis_errc::unexpected_reply;
                             if (!ec) r = taken(*reply);
                             if (done) done(ec, std::move(r));
                         },
                         "sync take"));
    }

    void sync_confirm(mesa::keys const& k, std::string const& id, std::vector<std::int64_t> const& seqs,
                      completion done = {}) {
        auto args = cluster_args(k, id);
        for (auto seq : seqs) args.push_back(format_seq(seq));
        state_->eval(script::sync_confirm, std::move(args), cluster_keys,
                     state_->guard(
                         [done = std::move(done)](std::error_code ec, redisReply const*) {
                             if (done) done(ec);
                         },
                         "sync confirm", !done));
    }

private:
    static constexpr std::size_t cluster_keys = 9;

    // The KEYS of every cluster script (redis_scripts.hpp), then ARGV[1]
    // (the namespace suffix) and ARGV[2] (an instance or an id).
    static std::vector<std::string> cluster_args(mesa::keys const& k, std::string const& who) {
        return {k.connected_clients(),
                k.connected_clients_count(),
                k.presence(),
                k.instances(),
                k.instance_connections(),
                k.epoch(),
                k.undelivered_messages(),
                k.sequence(),
                k.attempts(),
                k.suffix(),
                who};
    }

    // Outbox seqs are zero-padded decimal text in Redis, so they sort as text.
    static std::string format_seq(std::int64_t seq) {
        auto text = std::to_string(seq);
        return std::string(text.size() < 16 ? 16 - text.size() : 0, '0') + text;
    }
    static std::int64_t parse_seq(redisReply const& reply) {
        std::int64_t value = 0;
        auto const text = detail::redis_text(reply);
        std::from_chars(text.data(), text.data() + text.size(), value);
        return value;
    }
    // {'taken', n, seq, text, ...} (the first n from the outbox) or {'given_up', text, ...}.
    static take_result taken(redisReply const& reply) {
        take_result r;
        r.given_up = detail::redis_text(*reply.element[0]) == "given_up";
        if (r.given_up) {
            for (std::size_t i = 1; i < reply.elements; ++i)
                r.messages.push_back({0, std::string(detail::redis_text(*reply.element[i])), false});
            return r;
        }
        auto const from_outbox = reply.elements > 1 ? static_cast<std::size_t>(reply.element[1]->integer) : 0;
        for (std::size_t i = 2; i + 1 < reply.elements; i += 2)
            r.messages.push_back({parse_seq(*reply.element[i]), std::string(detail::redis_text(*reply.element[i + 1])),
                                  r.messages.size() < from_outbox});
        return r;
    }
    // sync_route's reply: {seq, published ids, stored ids, {id, dropped}..., failed ids}.
    static std::error_code routed(redisReply const& reply, route_result& r) {
        if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 5) return redis_errc::unexpected_reply;
        r.seq = parse_seq(*reply.element[0]);
        r.published = texts(*reply.element[1]);
        r.stored = texts(*reply.element[2]);
        auto const& dropped = *reply.element[3];
        for (std::size_t i = 0; i + 1 < dropped.elements; i += 2)
            r.dropped.emplace_back(detail::redis_text(*dropped.element[i]), dropped.element[i + 1]->integer);
        r.failed = texts(*reply.element[4]);
        return {};
    }
    // What the claim of an idempotent script found: {'claimed', ...},
    // {'in_flight'} or {'done', result}.
    static std::error_code claimed(redisReply const& reply, claim_result& c) {
        if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 1) return redis_errc::unexpected_reply;
        auto const what = detail::redis_text(*reply.element[0]);
        if (what == "claimed") {
            c.status = claim_result::state::claimed;
        } else if (what == "in_flight") {
            c.status = claim_result::state::in_flight;
        } else if (what == "done" && reply.elements == 2) {
            c.status = claim_result::state::done;
            c.result = std::string(detail::redis_text(*reply.element[1]));
        } else {
            return redis_errc::unexpected_reply;
        }
        return {};
    }
    static std::vector<std::string> texts(redisReply const& reply) {
        std::vector<std::string> out;
        for (std::size_t i = 0; i < reply.elements; ++i) out.emplace_back(detail::redis_text(*reply.element[i]));
        return out;
    }

    detail::redis_reply_handler integer_reply(char const* what, count_handler done) {
        return state_->guard(
            [done = std::move(done)](std::error_code ec, redisReply const* reply) {
                if (!ec && reply->type != REDIS_REPLY_INTEGER) ec = redis_errc::unexpected_reply;
                if (done) done(ec, ec ? 0 : static_cast<std::int64_t>(reply->integer));
            },
            what, !done);
    }

    static std::string describe(std::error_code ec, redisReply const* reply) {
        if (reply && reply->type == REDIS_REPLY_ERROR) return std::string(detail::redis_text(*reply));
        return ec.message();
    }

    using script = detail::redis_script;
    static constexpr std::size_t script_count = static_cast<std::size_t>(script::count);

    struct state : std::enable_shared_from_this<state> {
        state(asio::any_io_executor executor, options const& opts)
            : executor_(executor),
              on_log_(opts.on_log),
              replica_grace_(opts.replica_grace),
              replicas_(opts.replicas_to_acknowledge.value_or(0)),
              replica_timeout_(opts.replica_timeout),
              sentinel_timer_(executor),
              watch_timer_(executor) {
            detail::redis_connection_settings settings;
            if (opts.sentinels.empty()) {
                settings.endpoint = detail::parse_redis_uri(opts.uri);
                if (settings.endpoint.tls && !opts.tls)
                    throw std::invalid_argument(
                        "redis uri '" + settings.endpoint.describe() +
                        "' is rediss:// (TLS), but options::tls is not set: include <mesa/broker/redis_tls.hpp>, "
                        "set options::tls = mesa::broker::redis_tls({...}) and link OpenSSL (meson dependency "
                        "'mesa-tls', CMake target mesa::tls, pkg-config mesa-cpp-tls)");
            } else {
                if (opts.sentinel_master.empty())
                    throw std::invalid_argument("redis sentinels given without sentinel_master (the master's name)");
                std::vector<detail::redis_address> sentinels;
                for (auto const& text : opts.sentinels) sentinels.push_back(detail::parse_sentinel_address(text));
                sentinel_settings_.endpoint.host = sentinels.front().host;
                sentinel_settings_.endpoint.port = sentinels.front().port;
                sentinel_settings_.endpoint.user = opts.sentinel_username;
                sentinel_settings_.endpoint.password = opts.sentinel_password;
                sentinel_settings_.connect_timeout = opts.connect_timeout;
                sentinel_settings_.command_timeout = opts.command_timeout;
                sentinel_settings_.reconnect_initial = opts.reconnect_initial;
                sentinel_settings_.reconnect_max = opts.reconnect_max;
                sentinel_settings_.name = "sentinel";
                sentinel_settings_.tls = opts.tls;
                sentinel_ = std::make_unique<detail::redis_sentinel>(std::move(sentinels), opts.sentinel_master,
                                                                     opts.reconnect_initial, opts.reconnect_max);
                settings.managed = true;
                settings.require_master = true;
                settings.endpoint.host.clear();
                settings.endpoint.port = 0;
            }
            if (!opts.username.empty() || !opts.password.empty()) {
                if (opts.password.empty())
                    throw std::invalid_argument("redis username '" + opts.username + "' given without a password");
                settings.endpoint.user = opts.username;
                settings.endpoint.password = opts.password;
            }
            if (opts.db) {
                if (*opts.db < 0) throw std::invalid_argument("redis db must not be negative");
                settings.endpoint.db = *opts.db;
            }
            settings.reconnect_initial = opts.reconnect_initial;
            settings.reconnect_max = opts.reconnect_max;
            settings.connect_timeout = opts.connect_timeout;
            settings.command_timeout = opts.command_timeout;
            settings.max_pending = opts.max_pending_commands;
            settings.log = opts.on_log;
            settings.tls = opts.tls;
            if (opts.tls && !opts.tls->verifies_peer())
                log("TLS certificate verification is off: anyone on the path to Redis can read and change its "
                    "traffic (for tests only)");
            settings.name = "subscriptions";
            settings.ping_when_idle = true;  // its replies are publications: a PING proves Redis answers
            subscriber_ = std::make_shared<detail::redis_connection>(executor, settings);
            settings.ping_when_idle = false;
            if (opts.waits_for_replicas()) {
                settings.name = "replication acknowledgements";
                waiter_ = std::make_shared<detail::redis_connection>(executor, settings);
            }
            settings.name = "commands";
            for (std::size_t i = 0; i < script_count; ++i)
                settings.scripts.push_back(detail::redis_script_text(static_cast<script>(i)));
            settings.on_script_loaded = [sha = sha_](std::size_t i, std::string_view text) {
                (*sha)[i] = std::string(text);
            };
            commands_ = std::make_shared<detail::redis_connection>(executor, std::move(settings));
        }

        /// Runs script `id` (EVALSHA once its SHA is known, EVAL before);
        /// after a SCRIPT FLUSH, NOSCRIPT is answered by sending the text.
        void eval(script id, std::vector<std::string> args, std::size_t numkeys, detail::redis_reply_handler done) {
            std::vector<std::string_view> argv;
            argv.reserve(args.size() + 3);
            auto const& sha = (*sha_)[static_cast<std::size_t>(id)];
            bool const by_sha = !sha.empty();
            argv.emplace_back(by_sha ? "EVALSHA" : "EVAL");
            argv.emplace_back(by_sha ? std::string_view(sha) : std::string_view(detail::redis_script_text(id)));
            auto const count = std::to_string(numkeys);
            argv.emplace_back(count);
            for (auto const& a : args) argv.emplace_back(a);
            auto command = detail::redis_command_argv(argv);
            if (!by_sha) return commands_->send(std::move(command), std::move(done));
            commands_->send(std::move(command),
                            [weak = weak_from_this(), id, args = std::move(args), numkeys, done = std::move(done)](
                                std::error_code ec, redisReply const* reply) mutable {
                                auto s = weak.lock();
                                if (s && ec == redis_errc::server_error && reply &&
                                    detail::redis_text(*reply).substr(0, 8) == "NOSCRIPT") {
                                    (*s->sha_)[static_cast<std::size_t>(id)].clear();
                                    return s->eval(id, std::move(args), numkeys, std::move(done));
                                }
                                done(ec, reply);
                            });
        }

        void start() {
            std::weak_ptr<state> weak = shared_from_this();
            commands_->on_ready = [weak] {
                auto s = weak.lock();
                if (!s) return;
                if (s->commands_were_ready_ && s->restored_) s->restored_();
                s->commands_were_ready_ = true;
            };
            subscriber_->on_ready = [weak] {
                if (auto s = weak.lock()) s->resubscribe();
            };
            subscriber_->on_down = [weak] {
                if (auto s = weak.lock()) s->subscriptions_down();
            };
            subscriber_->on_push = [weak](redisReply const& reply) {
                if (auto s = weak.lock()) s->pushed(reply);
            };
            if (sentinel_) follow_sentinels();
            if (waiter_) {
                waiter_->on_ready = [weak, previous = waiter_->on_ready] {
                    if (previous) previous();
                    auto s = weak.lock();
                    if (!s || s->stopped_) return;
                    s->waiter_was_ready_ = true;
                    s->replicas_seen_ = 0;  // perhaps another master
                    if (!s->acknowledging_ && !s->unacknowledged_.empty()) s->acknowledge();
                };
            }
            commands_->start();
            subscriber_->start();
            if (waiter_) waiter_->start();
            if (sentinel_) run(sentinel_->start());
        }

        void stop() {
            stopped_ = true;
            commands_->stop();
            subscriber_->stop();
            if (waiter_) waiter_->stop();
            if (asking_) asking_->stop();
            if (watching_) watching_->stop();
            sentinel_timer_.cancel();
            watch_timer_.cancel();
        }

        // ---- Redis Sentinel: the Asio shell of detail::redis_sentinel ----------------

        std::vector<detail::redis_connection*> masters() const {
            std::vector<detail::redis_connection*> out{commands_.get(), subscriber_.get()};
            if (waiter_) out.push_back(waiter_.get());
            return out;
        }

        void follow_sentinels() {
            std::weak_ptr<state> weak = shared_from_this();
            auto ready = [weak, previous = commands_->on_ready] {
                if (previous) previous();
                if (auto s = weak.lock(); s && !s->stopped_) s->master_ready();
            };
            commands_->on_ready = ready;
            subscriber_->on_ready = [weak, previous = subscriber_->on_ready] {
                if (previous) previous();
                if (auto s = weak.lock(); s && !s->stopped_) s->master_ready();
            };
            auto down = [weak](char const* which) {
                return [weak, which] {
                    if (auto s = weak.lock(); s && !s->stopped_)
                        s->run(s->sentinel_->master_down(std::string("the ") + which + " connection failed"));
                };
            };
            commands_->on_down = down("commands");
            subscriber_->on_down = [weak, previous = subscriber_->on_down, next = down("subscriptions")] {
                if (previous) previous();
                next();
            };
            auto readonly = [weak] {
                if (auto s = weak.lock(); s && !s->stopped_) s->run(s->sentinel_->readonly());
            };
            commands_->on_readonly = readonly;
            if (waiter_) {
                waiter_->on_ready = [weak] {
                    if (auto s = weak.lock(); s && !s->stopped_) s->master_ready();
                };
                waiter_->on_down = down("replication acknowledgements");
                waiter_->on_readonly = readonly;
            }
        }

        void master_ready() {
            for (auto* c : masters())
                if (!c->ready()) return;
            run(sentinel_->master_ready());
        }

        void run(detail::redis_sentinel::actions actions) {
            using kind = detail::redis_sentinel::action::kind;
            auto self = shared_from_this();
            for (auto& a : actions) {
                if (stopped_) return;
                switch (a.what) {
                    case kind::ask:
                        ask(a.sentinel, a.query);
                        break;
                    case kind::connect:
                        subscriptions_down();
                        for (auto* c : masters()) {
                            if (stopped_) return;
                            c->connect_to(a.master);
                        }
                        break;
                    case kind::wait:
                        sentinel_timer_.expires_after(a.delay);
                        sentinel_timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
                            if (auto s = weak.lock(); s && !ec && !s->stopped_) s->run(s->sentinel_->timer());
                        });
                        break;
                    case kind::fail_waiting:
                        for (auto* c : masters()) {
                            if (stopped_) return;
                            c->refuse(a.error);
                        }
                        break;
                    case kind::watch:
                        watch(a.sentinel, a.delay);
                        break;
                    case kind::log:
                        log(a.text);
                        break;
                }
            }
        }

        detail::redis_connection_settings sentinel_at(std::size_t index) const {
            auto settings = sentinel_settings_;
            auto const& address = sentinel_addresses()[index];
            settings.endpoint.host = address.host;
            settings.endpoint.port = address.port;
            return settings;
        }
        std::vector<detail::redis_address> const& sentinel_addresses() const { return sentinel_->sentinels(); }

        // One question, on a connection of its own, closed once answered.
        void ask(std::size_t index, std::uint64_t query) {
            if (asking_) asking_->stop();
            asking_ = std::make_shared<detail::redis_connection>(executor_, sentinel_at(index));
            asking_->start();
            asking_->send(
                detail::redis_command("SENTINEL", "get-master-addr-by-name", sentinel_->master_name()),
                [weak = weak_from_this(), connection = std::weak_ptr<detail::redis_connection>(asking_), query](
                    std::error_code ec, redisReply const* reply) {
                    auto c = connection.lock();
                    if (c) c->stop();
                    auto s = weak.lock();
                    if (!s || s->stopped_) return;
                    // A connection that failed says why (a refused certificate...).
                    if (ec == redis_errc::disconnected && c && !c->last_failure().empty())
                        return s->run(s->sentinel_->unreachable(query, c->last_failure()));
                    if (ec) return s->run(s->sentinel_->unreachable(query, describe(ec, reply)));
                    if (reply->type == REDIS_REPLY_NIL) return s->run(s->sentinel_->answered(query, std::nullopt));
                    detail::redis_address master;
                    unsigned port = 0;
                    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
                        master.host = std::string(detail::redis_text(*reply->element[0]));
                        auto const text = detail::redis_text(*reply->element[1]);
                        auto const [end, bad] = std::from_chars(text.data(), text.data() + text.size(), port);
                        if (bad != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535)
                            port = 0;
                    }
                    if (master.host.empty() || port == 0)
                        return s->run(s->sentinel_->unreachable(query, "unexpected reply"));
                    master.port = static_cast<std::uint16_t>(port);
                    s->run(s->sentinel_->answered(query, std::move(master)));
                });
        }

        // Follows one sentinel's +switch-master events; another after a loss.
        void watch(std::size_t index, std::chrono::milliseconds delay) {
            if (watching_) watching_->stop();
            watching_.reset();
            watch_timer_.expires_after(delay);
            watch_timer_.async_wait([weak = weak_from_this(), index](std::error_code ec) {
                auto s = weak.lock();
                if (!s || ec || s->stopped_) return;
                auto c = std::make_shared<detail::redis_connection>(s->executor_, s->sentinel_at(index));
                std::weak_ptr<detail::redis_connection> wc = c;
                c->on_ready = [wc] {
                    if (auto c = wc.lock()) c->send_untracked(detail::redis_command("SUBSCRIBE", "+switch-master"));
                };
                c->on_push = [weak](redisReply const& reply) {
                    auto s = weak.lock();
                    if (!s || s->stopped_ || reply.type != REDIS_REPLY_ARRAY || reply.elements < 3) return;
                    auto const kind = detail::redis_text(*reply.element[0]);
                    if (kind == "subscribe") s->run(s->sentinel_->watch_ready());
                    if (kind == "message") s->run(s->sentinel_->switched(detail::redis_text(*reply.element[2])));
                };
                c->on_down = [weak, wc] {
                    if (auto c = wc.lock()) c->stop();
                    if (auto s = weak.lock(); s && !s->stopped_) s->run(s->sentinel_->watch_down());
                };
                s->watching_ = c;
                c->start();
            });
        }

        // ---- acknowledgements by replicas (WAIT) ----------------------------------

        /// A store answered `ec`: `then` runs once the replicas have it
        /// (or at once, with no replicas to wait for or on an error).
        void replicated(std::error_code ec, std::function<void(std::error_code)> then) {
            if (ec || !waiter_) return then(ec);
            unacknowledged_.push_back(std::move(then));
            if (!acknowledging_) acknowledge();
        }

        // One WAIT for every store answered before it (group commit). The
        // PUBLISH makes the WAIT cover them: WAIT waits for the replication
        // offset of its connection's last write, which comes after theirs.
        void acknowledge() {
            auto group =
                std::make_shared<std::vector<std::function<void(std::error_code)>>>(std::move(unacknowledged_));
            unacknowledged_.clear();
            // Its first connection comes up with the others' (the stores waiting
            // for it went to the same master): they wait for it.
            if (!waiter_->ready() && !waiter_was_ready_) {
                unacknowledged_ = std::move(*group);
                return;
            }
            if (!waiter_->ready()) {
                // Lost: it may come back on another master than the one the
                // stores went to, so it cannot confirm them.
                asio::post(executor_, [weak = weak_from_this(), group] {
                    auto s = weak.lock();
                    for (auto& then : *group) {
                        if (!s || s->stopped_) return;
                        then(redis_errc::not_replicated);
                    }
                });
                return;
            }
            acknowledging_ = true;
            if (replicas_ > 0) return wait_for(replicas_, group);
            // Every replica of the master: ROLE lists those in sync with it.
            waiter_->send(detail::redis_command("ROLE"),
                          [weak = weak_from_this(), group](std::error_code ec, redisReply const* reply) {
                              auto s = weak.lock();
                              if (!s || s->stopped_) return;
                              if (!ec && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
                                  reply->element[2]->type == REDIS_REPLY_ARRAY)
                                  s->replicas_listed(reply->element[2]->elements);
                              s->wait_for(std::max<std::size_t>(1, s->replicas_seen_), group);
                          });
        }

        // A replica that leaves still counts for replica_grace: a failover
        // first takes the replica it promotes away from the old master, while
        // the others acknowledge its writes until the sentinels move them (and
        // then drop those writes); the move to the new master comes seconds later.
        void replicas_listed(std::size_t listed) {
            auto const now = std::chrono::steady_clock::now();
            if (listed >= replicas_seen_ || now - replicas_seen_at_ > replica_grace_) {
                replicas_seen_ = listed;
                replicas_seen_at_ = now;
            }
        }

        // The PUBLISH makes the WAIT cover every store answered before it.
        void wait_for(std::size_t replicas, std::shared_ptr<std::vector<std::function<void(std::error_code)>>> group) {
            waiter_->send(detail::redis_command("PUBLISH", "mesa_replicated", ""), {});
            waiter_->send(
                detail::redis_command("WAIT", std::to_string(replicas), std::to_string(replica_timeout_.count())),
                [weak = weak_from_this(), group, replicas](std::error_code ec, redisReply const* reply) {
                    auto s = weak.lock();
                    if (!s || s->stopped_) return;
                    s->acknowledging_ = false;
                    if (!ec && reply->type != REDIS_REPLY_INTEGER) ec = redis_errc::unexpected_reply;
                    if (!ec && reply->integer < static_cast<long long>(replicas)) {
                        ec = redis_errc::not_replicated;
                        s->log(std::to_string(group->size()) + " stores acknowledged by " +
                               std::to_string(reply->integer) + " replicas of " + std::to_string(replicas) +
                               " within " + std::to_string(s->replica_timeout_.count()) +
                               " ms: reported as failed (a failover could lose them)");
                    } else if (ec) {
                        s->log("WAIT failed: " + describe(ec, reply));
                        ec = redis_errc::not_replicated;
                    }
                    for (auto& then : *group) {
                        if (s->stopped_) return;
                        then(ec);
                    }
                    if (!s->stopped_ && !s->acknowledging_ && !s->unacknowledged_.empty()) s->acknowledge();
                },
                replica_timeout_);  // WAIT blocks that long by design: its command timeout starts after
        }

        void log(std::string const& text) const {
            if (on_log_) on_log_(text);
        }

        /// Wraps a reply handler so that it is dropped once the broker is gone;
        /// failures of fire-and-forget operations (`report`) go to the log.
        template <class Handler>
        detail::redis_reply_handler guard(Handler handler, char const* what, bool report = false) {
            return [weak = weak_from_this(), handler = std::move(handler), what, report](
                       std::error_code ec, redisReply const* reply) mutable {
                auto s = weak.lock();
                if (!s || s->stopped_) return;
                if (ec && (report || ec == redis_errc::server_error))
                    s->log(std::string(what) + " failed: " + describe(ec, reply));
                handler(ec, reply);
            };
        }

        void send_simple(char const* what, std::string command, completion done) {
            bool const report = !done;
            commands_->send(std::move(command), guard(
                                                    [done = std::move(done)](std::error_code ec, redisReply const*) {
                                                        if (done) done(ec);
                                                    },
                                                    what, report));
        }

        void subscribe(std::string const& channel, channel_handler handler, completion done) {
            auto& handlers = channels_[channel];
            handlers.push_back(std::make_shared<channel_handler>(std::move(handler)));
            if (handlers.size() == 1) subscriber_->send_untracked(detail::redis_command("SUBSCRIBE", channel));
            if (!done) return;
            if (confirmed_.count(channel)) {
                asio::post(executor_, [weak = weak_from_this(), done = std::move(done)] {
                    if (auto s = weak.lock(); s && !s->stopped_) done({});
                });
            } else if (subscriber_->ready() || !waiting_for_retry()) {
                awaiting_[channel].push_back(std::move(done));
            } else {
                asio::post(executor_, [weak = weak_from_this(), done = std::move(done)] {
                    if (auto s = weak.lock(); s && !s->stopped_) done(redis_errc::disconnected);
                });
            }
        }

        // Between attempts (backoff): a confirmation cannot come before the next one.
        bool waiting_for_retry() const { return subscriber_down_; }

        void resubscribe() {
            subscriber_down_ = false;
            if (channels_.empty()) return;
            renewing_ = subscribed_once_;
            subscribed_once_ = true;
            std::vector<std::string_view> args;
            args.reserve(channels_.size() + 1);
            args.emplace_back("SUBSCRIBE");
            for (auto const& c : channels_) args.emplace_back(c.first);
            auto const command = detail::redis_command_argv(args);
            subscriber_->send_untracked(command);
        }

        void subscriptions_down() {
            subscriber_down_ = true;
            confirmed_.clear();
            auto awaiting = std::move(awaiting_);
            awaiting_.clear();
            auto self = shared_from_this();
            for (auto& [channel, dones] : awaiting)
                for (auto& done : dones) {
                    if (stopped_) return;
                    done(redis_errc::disconnected);
                }
        }

        void pushed(redisReply const& reply) {
            if (reply.type == REDIS_REPLY_ERROR) {
                // E.g. an ACL forbidding a channel: the subscription is not active.
                log("SUBSCRIBE failed: " + std::string(detail::redis_text(reply)));
                return;
            }
            if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 3) return;
            auto const kind = detail::redis_text(*reply.element[0]);
            auto const channel = std::string(detail::redis_text(*reply.element[1]));
            auto self = shared_from_this();
            if (kind == "message") {
                auto it = channels_.find(channel);
                if (it == channels_.end()) return;
                auto& handlers = it->second;  // stays valid if a handler subscribes (rehash keeps references)
                auto const payload = detail::redis_text(*reply.element[2]);
                // By index and by copy: a handler may subscribe more handlers.
                for (std::size_t i = 0, n = handlers.size(); i < n && !stopped_; ++i) {
                    auto handler = handlers[i];
                    (*handler)(payload);
                }
            } else if (kind == "subscribe") {
                confirmed_.insert(channel);
                if (renewing_ && confirmed_.size() >= channels_.size()) {
                    renewing_ = false;
                    if (resubscribed_) resubscribed_();
                    if (stopped_) return;
                }
                auto it = awaiting_.find(channel);
                if (it == awaiting_.end()) return;
                auto dones = std::move(it->second);
                awaiting_.erase(it);
                for (auto& done : dones) {
                    if (stopped_) return;
                    done({});
                }
            }
        }

        asio::any_io_executor executor_;
        std::function<void(std::string)> on_log_;
        // SHA1 of each script once Redis loaded it; shared with the connection's callback.
        std::shared_ptr<std::array<std::string, script_count>> sha_ =
            std::make_shared<std::array<std::string, script_count>>();
        std::function<void()> restored_;
        std::function<void()> resubscribed_;
        bool subscribed_once_ = false;
        bool renewing_ = false;  // subscriptions sent again after a lost connection, not all confirmed yet
        bool waiter_was_ready_ = false;
        // The most replicas ROLE listed on the waiter's master lately, and when.
        std::size_t replicas_seen_ = 0;
        std::chrono::steady_clock::time_point replicas_seen_at_;
        std::chrono::milliseconds replica_grace_;
        std::size_t replicas_;  // 0: every replica of the master (options::replicas_to_acknowledge)
        std::chrono::milliseconds replica_timeout_;
        std::shared_ptr<detail::redis_connection> waiter_;                  // only when stores wait for replicas
        std::vector<std::function<void(std::error_code)>> unacknowledged_;  // bounded by the commands' bound
        bool acknowledging_ = false;
        std::unique_ptr<detail::redis_sentinel> sentinel_;  // only with sentinels
        detail::redis_connection_settings sentinel_settings_;
        std::shared_ptr<detail::redis_connection> asking_, watching_;
        asio::steady_timer sentinel_timer_, watch_timer_;
        bool commands_were_ready_ = false;
        std::shared_ptr<detail::redis_connection> commands_, subscriber_;
        bool stopped_ = false;
        bool subscriber_down_ = false;
        std::unordered_map<std::string, std::vector<std::shared_ptr<channel_handler>>> channels_;
        std::unordered_set<std::string> confirmed_;
        // Bounded by the number of subscribe() calls made while connecting.
        std::unordered_map<std::string, std::vector<completion>> awaiting_;
    };

    std::shared_ptr<state> state_;
};

}  // namespace mesa::broker
