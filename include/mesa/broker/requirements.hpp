#pragma once
// What a type must provide to be used as the Broker of mesa::server.
//
// A broker carries everything that crosses process boundaries, under the key
// names of PROTOCOL.md ("Redis schema"); the server computes those names
// (namespace suffix included) and the broker stores them verbatim. Every
// operation is asynchronous: completion handlers run on the executor the
// broker was constructed with, never inline, never on another thread, and
// never after the broker was destroyed.
//
// Exact presence (DESIGN.md, "Delivery guarantees"): every server instance
// registers itself and counts its sockets per id; an id is in Node's
// `connected_clients` set while its count in the whole cluster is above 0, and
// `connected_clients_count` holds every instance's connections. The
// operations, each one atomic step at the broker, all keyed by mesa::keys:
//
//   presence_register(keys, instance, ttl, connections, {id, sockets}..., done(ec, epoch))
//       replaces the instance's whole contribution by the one given, marks it
//       alive for `ttl`, and hands out a new epoch (the fencing token);
//   presence_change(keys, instance, epoch, connections_delta, id, sockets_delta, done(ec, n))
//       n = the id's sockets in the cluster after the change (0 without id),
//       or -1 when `epoch` is no longer the instance's: it was reaped, nothing
//       changed, and it must register again;
//   presence_admit(keys, instance, epoch, id, max_sockets, done(ec, n))
//       one more socket of `id` (as presence_change with sockets_delta 1),
//       only if the id holds fewer than max_sockets in the cluster: else
//       n = -2 and nothing changes (the per-user connection cap); -1 fenced;
//   presence_query(keys, ids, done(ec, counts))
//       per id: its sockets in the cluster, -1 when only Node's set holds it
//       (online on a Node server, count unknown), 0 when offline;
//   presence_renew(keys, instance, epoch, ttl, done(ec, 1 | -1))
//       extends the liveness (and re-adds the instance's ids to the set);
//   presence_reap(keys, done(ec, instances))
//       withdraws every instance whose liveness expired;
//   presence_withdraw(keys, instance, epoch, done(ec, 1 | -1))
//       withdraws the instance (it stops).
// When an id's last socket is gone (closed, or its instance withdrawn), the
// messages of its outbox go back, in order, before its backlog.
//
// Lossless sync, on the same keys:
//
//   sync_route(keys, message, ids, max_backlog, origin, done(ec, route_result))
//       store-or-deliver as one step: an id with sockets on our instances gets
//       the message in its outbox (kept until a socket confirms it) and
//       published on keys.ws() with its seq; an id only a Node server holds
//       gets it published; an offline id gets it appended to its backlog.
//       `done` runs once the broker has taken it (ec: it has not);
//   sync_take(keys, id, max_attempts, done(ec, take_result))
//       what a socket of the id that just authenticated must be sent, oldest
//       first: the id's outbox (not confirmed by any socket), then its
//       backlog, moved into the outbox under new seqs; or both removed
//       (given_up) when its redeliveries went unconfirmed more than
//       max_attempts times in a row;
//   sync_confirm(keys, id, seqs, done)
//       a socket of the id received those: they leave its outbox.
//
// Idempotent sends (mesa/idempotency.hpp), the key claimed in the same atomic
// step as the store or publish it guards:
//
//   idempotent_route(keys, claim, message, ids, max_backlog, origin, done(ec, claim_result, route_result))
//   idempotent_publish(claim, channel, payload, done(ec, claim_result))
//       when claim.key holds a taken attempt's result: `done` (with it) and
//       nothing else; when another attempt holds it: `in_flight` and nothing
//       else; else the key is marked in flight for claim.token until
//       claim.in_flight_ttl passes, and sync_route (publish) runs;
//   idempotency_settle(claim, result, ttl, done(ec))
//       records `result` under the key for `ttl`, unless another attempt
//       holds it now (this one's mark expired and a retry claimed it);
//   idempotency_release(claim, done(ec))
//       frees the key if this attempt still holds it.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <mesa/broker/completion.hpp>
#include <mesa/keys.hpp>

namespace mesa::broker {

namespace detail {

template <class B, class = void>
struct has_options : std::false_type {};
template <class B>
struct has_options<B, std::void_t<typename B::options>> : std::true_type {};

template <class B, class = void>
struct has_pubsub : std::false_type {};
template <class B>
struct has_pubsub<B, std::void_t<decltype(std::declval<B&>().subscribe(std::string(), channel_handler())),
                                 decltype(std::declval<B&>().publish(std::string(), std::string()))>> : std::true_type {
};

template <class B, class = void>
struct has_sets : std::false_type {};
template <class B>
struct has_sets<B, std::void_t<decltype(std::declval<B&>().set_add(std::string(), std::string(), completion())),
                               decltype(std::declval<B&>().set_remove(std::string(), std::string(), completion())),
                               decltype(std::declval<B&>().set_contains(std::string(), std::vector<std::string>(),
                                                                        contains_handler())),
                               decltype(std::declval<B&>().set_members(std::string(), members_handler()))>>
    : std::true_type {};

template <class B, class = void>
struct has_counters : std::false_type {};
template <class B>
struct has_counters<B, std::void_t<decltype(std::declval<B&>().counter_add(std::string(), 1, completion())),
                                   decltype(std::declval<B&>().counter_get(std::string(), count_handler()))>>
    : std::true_type {};

template <class B, class = void>
struct has_backlog : std::false_type {};
template <class B>
struct has_backlog<B,
                   std::void_t<decltype(std::declval<B&>().backlog_append(std::string(), std::string(), std::string(),
                                                                          std::size_t(), count_handler())),
                               decltype(std::declval<B&>().backlog_take(std::string(), std::string(), take_handler()))>>
    : std::true_type {};

template <class B, class = void>
struct has_presence : std::false_type {};
template <class B>
struct has_presence<
    B, std::void_t<
           decltype(std::declval<B&>().presence_register(
               std::declval<mesa::keys const&>(), std::string(), std::chrono::milliseconds(), std::int64_t(),
               std::vector<std::pair<std::string, std::int64_t>>(), count_handler())),
           decltype(std::declval<B&>().presence_change(std::declval<mesa::keys const&>(), std::string(), std::int64_t(),
                                                       std::int64_t(), std::string(), std::int64_t(), count_handler())),
           decltype(std::declval<B&>().presence_query(std::declval<mesa::keys const&>(), std::vector<std::string>(),
                                                      counts_handler())),
           decltype(std::declval<B&>().presence_admit(std::declval<mesa::keys const&>(), std::string(), std::int64_t(),
                                                      std::string(), std::int64_t(), count_handler())),
           decltype(std::declval<B&>().presence_renew(std::declval<mesa::keys const&>(), std::string(), std::int64_t(),
                                                      std::chrono::milliseconds(), count_handler())),
           decltype(std::declval<B&>().presence_reap(std::declval<mesa::keys const&>(), members_handler())),
           decltype(std::declval<B&>().presence_withdraw(std::declval<mesa::keys const&>(), std::string(),
                                                         std::int64_t(), count_handler()))>> : std::true_type {};

template <class B, class = void>
struct has_sync : std::false_type {};
template <class B>
struct has_sync<B,
                std::void_t<decltype(std::declval<B&>().sync_route(std::declval<mesa::keys const&>(), std::string(),
                                                                   std::vector<std::string>(), std::size_t(),
                                                                   std::string(), route_handler())),
                            decltype(std::declval<B&>().sync_take(std::declval<mesa::keys const&>(), std::string(),
                                                                  std::size_t(), sync_take_handler())),
                            decltype(std::declval<B&>().sync_confirm(std::declval<mesa::keys const&>(), std::string(),
                                                                     std::vector<std::int64_t>(), completion())),
                            decltype(std::declval<B&>().publish(std::string(), std::string(), completion()))>>
    : std::true_type {};

template <class B, class = void>
struct has_idempotency : std::false_type {};
template <class B>
struct has_idempotency<B,
                       std::void_t<decltype(std::declval<B&>().idempotent_route(
                                       std::declval<mesa::keys const&>(), idempotency_claim(), std::string(),
                                       std::vector<std::string>(), std::size_t(), std::string(), route_once_handler())),
                                   decltype(std::declval<B&>().idempotent_publish(idempotency_claim(), std::string(),
                                                                                  std::string(), claim_handler())),
                                   decltype(std::declval<B&>().idempotency_settle(
                                       idempotency_claim(), std::string(), std::chrono::milliseconds(), completion())),
                                   decltype(std::declval<B&>().idempotency_release(idempotency_claim(), completion()))>>
    : std::true_type {};

template <class B, class = void>
struct has_health : std::false_type {};
template <class B>
struct has_health<B, std::void_t<decltype(bool(std::declval<B const&>().connected())),
                                 decltype(std::declval<B&>().on_restored(std::function<void()>())),
                                 decltype(std::declval<B&>().on_resubscribed(std::function<void()>()))>>
    : std::true_type {};

}  // namespace detail

/// Checks every broker requirement with a sentence naming what is missing;
/// instantiate as `static_assert(check<B>())`.
template <class B>
constexpr bool check() {
    static_assert(detail::has_options<B>::value, "Broker requirement: a nested `options` struct");
    static_assert(std::is_constructible_v<B, asio::any_io_executor, typename B::options const&>,
                  "Broker requirement: a constructor (asio::any_io_executor, options const&)");
    static_assert(detail::has_pubsub<B>::value,
                  "Broker requirement: subscribe(channel, channel_handler) and publish(channel, payload)");
    static_assert(detail::has_sets<B>::value, "Broker requirement: set_add / set_remove / set_contains / set_members");
    static_assert(detail::has_counters<B>::value, "Broker requirement: counter_add / counter_get");
    static_assert(detail::has_backlog<B>::value,
                  "Broker requirement: backlog_append(hash, field, message, max, handler) and "
                  "backlog_take(hash, field, handler)");
    static_assert(detail::has_presence<B>::value,
                  "Broker requirement: presence_register / presence_change / presence_admit / presence_query / "
                  "presence_renew / presence_reap / "
                  "presence_withdraw (exact presence, see requirements.hpp)");
    static_assert(detail::has_sync<B>::value,
                  "Broker requirement: sync_route / sync_take / sync_confirm and publish(channel, payload, completion) "
                  "(lossless sync, see requirements.hpp)");
    static_assert(detail::has_idempotency<B>::value,
                  "Broker requirement: idempotent_route / idempotent_publish / idempotency_settle / "
                  "idempotency_release (idempotent sends, see requirements.hpp)");
    static_assert(detail::has_health<B>::value,
                  "Broker requirement: connected(), on_restored(handler) (called when a lost connection is back) and "
                  "on_resubscribed(handler) (called when lost subscriptions are active again)");
    return true;
}

}  // namespace mesa::broker
