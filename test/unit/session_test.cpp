// Sessions and admission: credentials that expire (4004) and their refresh,
// the per-user connection cap (4005), the upgrade rate limit (503).
#include <mesa/broker/detail/redis_error.hpp>

#include "../support/memory_server.hpp"
#include "../support/send_answers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using mesa::json::object;
using mesa::test::auth_frame;
using mesa::test::auth_with;
using mesa::test::drain;
using mesa::test::memory_server;
using mesa::test::messages_of;
using mesa::test::of_type;
using mesa::test::run_until;

namespace {

using std::chrono::milliseconds;
using system_clock = std::chrono::system_clock;
using session_server = memory_server<mesa::authentication, mesa::sync>;

/// Admits the credentials' `id`, expiring `ttl_ms` from now (a negative
/// value: already expired); without `ttl_ms`, never.
template <class Server>
void trust_with_expiry(Server& s) {
    s.template feature<mesa::authentication>().on_authenticate(
        [](auto const&, object const& credentials, mesa::authentication::done done) {
            std::string id(credentials.at("id").as_string());
            if (auto const* ttl = credentials.if_contains("ttl_ms"))
                done.succeed(id, object{{"id", id}}, system_clock::now() + milliseconds(ttl->to_number<int>()));
            else
                done.succeed(id, object{{"id", id}});
        });
}

std::string auth_for(std::string const& id, int ttl_ms) { return auth_with({{"id", id}, {"ttl_ms", ttl_ms}}); }

std::size_t count_op(mesa::transport::memory::connection const& peer, int op) {
    std::size_t n = 0;
    for (auto const& m : messages_of(peer)) n += m.op == op;
    return n;
}

}  // namespace

TEST_CASE("credentials that expire close the client with 4004 and an error event at their expiry") {
    asio::io_context ioc;
    session_server s{ioc};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    trust_with_expiry(s);
    s.start();
    auto expiring = s.transport().connect("/");
    auto lasting = s.transport().connect("/");
    expiring->send_text(auth_for("a", 80));
    lasting->send_text(auth_frame("b"));
    run_until(
        ioc, [] { return false; }, milliseconds(40));
    CHECK(expiring->open());  // not before its expiry
    CHECK(run_until(
        ioc, [&] { return !expiring->open(); }, milliseconds(2000)));
    CHECK(expiring->close_code() == mesa::close_code::token_expired);
    CHECK(lasting->open());
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("4004") != std::string::npos);
}

TEST_CASE("one queue serves every client, whatever the order of their expiries") {
    asio::io_context ioc;
    session_server s{ioc};
    trust_with_expiry(s);
    s.start();
    auto late = s.transport().connect("/");
    auto early = s.transport().connect("/");
    late->send_text(auth_for("late", 300));
    drain(ioc);
    early->send_text(auth_for("early", 30));  // queued after, due before
    CHECK(run_until(
        ioc, [&] { return !early->open(); }, milliseconds(2000)));
    CHECK(late->open());
    CHECK(run_until(
        ioc, [&] { return !late->open(); }, milliseconds(2000)));
    CHECK(late->close_code() == mesa::close_code::token_expired);
}

TEST_CASE("an op 2 for the same id refreshes: new expiry and user, no second op 22, no redelivery") {
    asio::io_context ioc;
    session_server s{ioc};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    trust_with_expiry(s);
    s.start();
    auto peer = s.transport().connect("/");
    peer->send_text(auth_for("a", 100));
    drain(ioc);
    REQUIRE(count_op(*peer, mesa::opcode::authenticated) == 1);
    // A message that waits for "a" now: a new authentication would take and
    // redeliver it; a refresh must not.
    s.broker().backlog_append(s.keys().undelivered_messages(), "a", R"({"op":0,"d":{},"t":"LATER"})", 0);
    drain(ioc);
    peer->send_text(auth_for("a", 400));
    run_until(
        ioc, [] { return false; }, milliseconds(200));
    CHECK(peer->open());  // past the first expiry
    CHECK(errors.empty());
    CHECK(count_op(*peer, mesa::opcode::authenticated) == 1);
    CHECK(of_type(*peer, "LATER").empty());
    CHECK(s.clients().at(0)->id() == "a");
    CHECK(run_until(
        ioc, [&] { return !peer->open(); }, milliseconds(2000)));
    CHECK(peer->close_code() == mesa::close_code::token_expired);
}

TEST_CASE("a refresh with credentials that do not expire ends the expiry") {
    asio::io_context ioc;
    session_server s{ioc};
    trust_with_expiry(s);
    s.start();
    auto peer = s.transport().connect("/");
    peer->send_text(auth_for("a", 40));
    drain(ioc);
    peer->send_text(auth_frame("a"));
    run_until(
        ioc, [] { return false; }, milliseconds(120));
    CHECK(peer->open());
}

TEST_CASE("a refresh with expired or refused credentials follows disconnect_on_fail (1008)") {
    for (bool expired : {true, false}) {
        CAPTURE(expired);
        asio::io_context ioc;
        session_server s{ioc};
        std::vector<std::string> errors;
        s.on_error([&](auto const& e) { errors.push_back(e.what); });
        s.feature<mesa::authentication>().on_authenticate(
            [](auto const&, object const& credentials, mesa::authentication::done done) {
                if (credentials.contains("bad")) return done.fail("bad signature");
                auto const ttl = milliseconds(credentials.at("ttl_ms").to_number<int>());
                done.succeed("a", object{}, system_clock::now() + ttl);
            });
        s.start();
        auto peer = s.transport().connect("/");
        peer->send_text(auth_for("a", 10000));
        drain(ioc);
        REQUIRE(peer->open());
        if (expired)
            peer->send_text(auth_for("a", -1000));
        else
            peer->send_text(auth_with({{"bad", true}}));
        drain(ioc);
        CHECK_FALSE(peer->open());
        CHECK(peer->close_code() == mesa::close_code::policy_violation);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find(expired ? "token expired" : "bad signature") != std::string::npos);
    }
}

TEST_CASE("an op 2 for another id is a new authentication: the new id's backlog is redelivered") {
    asio::io_context ioc;
    session_server s{ioc};
    trust_with_expiry(s);
    s.start();
    s.send(mesa::message("FOR_B", {}), {"b"});  // b is offline: stored
    drain(ioc);
    auto peer = s.transport().connect("/");
    peer->send_text(auth_for("a", 60));
    drain(ioc);
    peer->send_text(auth_frame("b"));  // no expiry for b
    CHECK(run_until(ioc, [&] { return of_type(*peer, "FOR_B").size() == 1; }));
    CHECK(s.clients().at(0)->id() == "b");
    run_until(
        ioc, [] { return false; }, milliseconds(120));
    CHECK(peer->open());  // a's expiry no longer applies
}

namespace {

using capped_server = memory_server<mesa::authentication>;

capped_server::options capped(std::shared_ptr<mesa::broker::memory::hub> hub, std::size_t cap) {
    capped_server::options o;
    o.broker.cluster = std::move(hub);
    o.max_connections_per_user = cap;
    return o;
}

/// Starts each server, authenticating a client as the id it gives.
template <class... Servers>
void start_trusting(Servers&... servers) {
    ((mesa::test::trust_ids(servers), servers.start()), ...);
}

}  // namespace

TEST_CASE("per-user cap: the third socket of a user capped at 2 closes with 4005, across instances") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    capped_server one{ioc, capped(hub, 2)}, two{ioc, capped(hub, 2)};
    std::vector<std::string> errors;
    two.on_error([&](auto const& e) { errors.push_back(e.what); });
    start_trusting(one, two);
    drain(ioc);
    auto first = mesa::test::connect_as(one, "u");
    auto second = mesa::test::connect_as(one, "u");
    auto other = mesa::test::connect_as(two, "v");
    drain(ioc);
    auto third = mesa::test::connect_as(two, "u");
    drain(ioc);
    CHECK_FALSE(third->open());
    CHECK(third->close_code() == mesa::close_code::too_many_connections);
    CHECK(count_op(*third, mesa::opcode::authenticated) == 0);  // refused before op 22
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("max_connections_per_user") != std::string::npos);
    for (auto const& p : {first, second, other}) {
        CHECK(p->open());
        CHECK(count_op(*p, mesa::opcode::authenticated) == 1);
    }

    // A refused socket takes no place; a closed one frees its place.
    second->close();
    drain(ioc);
    auto again = mesa::test::connect_as(two, "u");
    drain(ioc);
    CHECK(again->open());
    CHECK(count_op(*again, mesa::opcode::authenticated) == 1);
    auto over = mesa::test::connect_as(one, "u");
    drain(ioc);
    CHECK(over->close_code() == mesa::close_code::too_many_connections);
}

TEST_CASE("per-user cap: a socket that closes while the broker decides leaves no count behind") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    capped_server s{ioc, capped(hub, 1)};
    mesa::test::trust_ids(s);
    s.start();
    drain(ioc);
    for (int i = 0; i < 3; ++i) {
        auto gone = s.transport().connect("/");
        gone->send_text(mesa::test::auth_frame("u"));
        ioc.restart();
        while (s.clients().empty() || s.clients()[0]->id() != "u") ioc.run_one();  // the op 2 is handled,
        gone->close();                                                             // the verdict is not yet
        drain(ioc);
    }
    auto stays = mesa::test::connect_as(s, "u");
    drain(ioc);
    CHECK(stays->open());
    CHECK(count_op(*stays, mesa::opcode::authenticated) == 1);
    std::vector<bool> online;
    s.broker().set_contains(s.keys().connected_clients(), {"u"},
                            [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(online == std::vector<bool>{true});
    stays->close();
    drain(ioc);
    s.broker().set_contains(s.keys().connected_clients(), {"u"},
                            [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(online == std::vector<bool>{false});
}

TEST_CASE("per-user cap: a refresh of a capped user's socket is not a new connection") {
    asio::io_context ioc;
    capped_server s{ioc, capped(std::make_shared<mesa::broker::memory::hub>(), 1)};
    trust_with_expiry(s);
    s.start();
    drain(ioc);
    auto peer = s.transport().connect("/");
    peer->send_text(auth_for("u", 60000));
    drain(ioc);
    peer->send_text(auth_for("u", 120000));
    drain(ioc);
    CHECK(peer->open());
    CHECK(count_op(*peer, mesa::opcode::authenticated) == 1);
}

TEST_CASE("upgrade rate limit: a token bucket; refusals are told to come back in spread slots") {
    using clock = mesa::upgrade_rate_limit::clock;
    mesa::upgrade_rate_limit limit(10, 3);
    auto const t0 = clock::now();
    for (int i = 0; i < 3; ++i) CHECK(limit.take(t0).count() == 0);  // the burst
    // Refused at 10/s: the first waits for the next token (0.1 s, said as 1 s),
    // the next ones for the slots after it, so they do not all come back at once.
    std::vector<long> waits;
    for (int i = 0; i < 25; ++i) waits.push_back(static_cast<long>(limit.take(t0).count()));
    CHECK(waits.front() == 1);
    CHECK(std::is_sorted(waits.begin(), waits.end()));
    CHECK(waits.back() == 3);                                // the 25th refusal's slot is 2.5 s away
    CHECK(limit.take(t0 + milliseconds(100)).count() == 0);  // one token back
    CHECK(limit.take(t0 + milliseconds(100)).count() > 0);
    CHECK_THROWS_AS(mesa::upgrade_rate_limit(0), std::invalid_argument);
    CHECK(mesa::upgrade_rate_limit(2.5).burst() == 3);  // default burst: the rate, rounded up
}

TEST_CASE("upgrade rate limit on a server: the excess gets 503 with Retry-After and an error event") {
    asio::io_context ioc;
    session_server::options o;
    o.upgrade_limit = std::make_shared<mesa::upgrade_rate_limit>(1, 2);
    o.allowed_origins = {"https://ok.example"};
    session_server s{ioc, o};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.start();
    auto foreign = s.transport().connect("/", "https://other.example");
    CHECK(foreign->http_status() == 403);  // refused before it takes a token
    CHECK(foreign->retry_after() == 0);
    auto one = s.transport().connect("/");
    auto two = s.transport().connect("/");
    auto three = s.transport().connect("/");
    CHECK(one->http_status() == 101);
    CHECK(two->http_status() == 101);
    CHECK(three->http_status() == 503);
    CHECK(three->retry_after() >= 1);
    drain(ioc);
    CHECK(s.clients().size() == 2);
    REQUIRE(errors.size() == 2);
    CHECK(errors[1].find("upgrade rate limit") != std::string::npos);
}

TEST_CASE("presence query: sockets per id in the cluster, -1 for an id only Node's set holds, 0 offline") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    capped_server one{ioc, capped(hub, 0)}, two{ioc, capped(hub, 0)};
    start_trusting(one, two);
    auto a1 = mesa::test::connect_as(one, "a");
    auto a2 = mesa::test::connect_as(two, "a");
    auto b = mesa::test::connect_as(two, "b");
    one.broker().set_add(one.keys().connected_clients(), "node-user");  // as a Node server does
    drain(ioc);
    auto ask = [&](auto& s) {
        std::vector<std::int64_t> counts;
        s.presence({"a", "b", "node-user", "nobody"}, [&](std::error_code ec, std::vector<std::int64_t> c) {
            CHECK_FALSE(ec);
            counts = std::move(c);
        });
        drain(ioc);
        return counts;
    };
    CHECK(ask(one) == std::vector<std::int64_t>{2, 1, -1, 0});
    a2->close();
    b->close();
    drain(ioc);
    CHECK(ask(two) == std::vector<std::int64_t>{1, 0, -1, 0});
}

TEST_CASE("disconnect: closes an id's sockets on every instance with the code and reason given") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    capped_server one{ioc, capped(hub, 0)}, two{ioc, capped(hub, 0)};
    start_trusting(one, two);
    auto here = mesa::test::connect_as(one, "a");
    auto there = mesa::test::connect_as(two, "a");
    auto other = mesa::test::connect_as(two, "b");
    drain(ioc);
    bool taken = false;
    one.disconnect({"a"}, 4100, "banned", [&](std::error_code ec) { taken = !ec; });
    drain(ioc);
    CHECK(taken);
    for (auto const& p : {here, there}) {
        CAPTURE(p == here);
        CHECK_FALSE(p->open());
        CHECK(p->close_code() == 4100);
        CHECK(p->close_reason() == "banned");
    }
    CHECK(other->open());

    // Our own codes and long reasons are refused; an event from another
    // publisher asking for them closes with 1000.
    CHECK_THROWS_AS(one.disconnect({"b"}, mesa::close_code::rate_limited), std::invalid_argument);
    CHECK_THROWS_AS(one.disconnect({"b"}, 4100, std::string(124, 'x')), std::invalid_argument);
    CHECK_THROWS_AS(one.disconnect({"b"}, 1001), std::invalid_argument);
    CHECK(other->open());
    mesa::message forged(mesa::opcode::internal_event, object{{"code", 4003}, {"reason", 7}});
    forged.t = "DISCONNECT_CLIENT";
    one.broker().publish(one.keys().ws(), mesa::serialize(mesa::envelope{forged, {"b"}, {}, {}}));
    drain(ioc);
    CHECK(other->close_code() == mesa::close_code::normal);
}

namespace {

session_server::options in_cluster(std::shared_ptr<mesa::broker::memory::hub> hub) {
    session_server::options o;
    o.broker.cluster = std::move(hub);
    return o;
}

using answers = mesa::test::send_answers;

/// The memory broker whose next idempotent route answers `fail_next` after
/// doing its work, as Redis does when the reply is lost (disconnected) or
/// the replicas did not confirm the store (not_replicated).
class failing_broker : public mesa::broker::memory {
public:
    using mesa::broker::memory::memory;
    std::error_code fail_next;

    void idempotent_route(mesa::keys const& k, mesa::broker::idempotency_claim const& claim, std::string const& message,
                          std::vector<std::string> const& ids, std::size_t max_backlog, std::string const& origin,
                          mesa::broker::route_once_handler done) {
        mesa::broker::memory::idempotent_route(
            k, claim, message, ids, max_backlog, origin,
            [fail = std::exchange(fail_next, {}), done = std::move(done)](
                std::error_code ec, mesa::broker::claim_result c, mesa::broker::route_result r) {
                done(fail ? fail : ec, std::move(c), std::move(r));
            });
    }
};

using send_outcome = mesa::send_outcome;

}  // namespace

TEST_CASE("idempotent send: a repeated key delivers once in the cluster and the repeat gets the first result") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    session_server one{ioc, in_cluster(hub)}, two{ioc, in_cluster(hub)};
    start_trusting(one, two);
    auto u = mesa::test::connect_as(two, "u");
    drain(ioc);
    answers got;
    auto const m = mesa::message("N", object{{"n", 1}});

    // Sent by one, repeated through the other: u gets it once.
    one.send(m, {"u"}, {}, {"k1", "first"}, got.handler());
    drain(ioc);
    two.send(m, {"u"}, {}, {"k1", "second"}, got.handler());
    drain(ioc);
    CHECK(got.outcomes() == std::vector<send_outcome>{send_outcome::sent, send_outcome::replayed});
    CHECK(got.results[1].result == "first");
    CHECK(of_type(*u, "N").size() == 1);

    // Two at once: one sends, the other finds it in flight.
    one.send(m, {"u"}, {}, {"k2", "a"}, got.handler());
    two.send(m, {"u"}, {}, {"k2", "b"}, got.handler());
    drain(ioc);
    auto racing = got.outcomes();  // the one in flight is answered first: the other records its result before
    std::sort(racing.begin() + 2, racing.end());
    CHECK(racing.at(2) == send_outcome::sent);
    CHECK(racing.at(3) == send_outcome::in_flight);
    CHECK(of_type(*u, "N").size() == 2);

    // To everyone (a publish, not a sync route): once, the sender's own clients included.
    auto here = mesa::test::connect_as(one, "h");
    drain(ioc);
    one.send(m, {"*"}, {}, {"k3", "all"}, got.handler());
    drain(ioc);
    two.send(m, {"*"}, {}, {"k3", "all"}, got.handler());
    drain(ioc);
    CHECK(got.outcomes().at(5) == send_outcome::replayed);
    CHECK(of_type(*u, "N").size() == 3);
    CHECK(of_type(*here, "N").size() == 1);

    // Another key sends again.
    two.send(m, {"u"}, {}, {"k4", "again"}, got.handler());
    drain(ioc);
    CHECK(got.outcomes().at(6) == send_outcome::sent);
    CHECK(of_type(*u, "N").size() == 4);
    for (auto const& ec : got.errors) CHECK_FALSE(ec);

    // Bad keys are refused before anything is sent.
    for (std::string bad : {std::string(), std::string(256, 'k'), std::string("a b"), std::string("a\x01")})
        CHECK_THROWS_AS(one.send(m, {"u"}, {}, {bad}, got.handler()), std::invalid_argument);
    CHECK_NOTHROW(one.send(m, {"u"}, {}, {std::string(255, 'k')}, got.handler()));
    drain(ioc);
    CHECK(of_type(*u, "N").size() == 5);

    // Without a handler; and naming nobody once `excluding` is removed: sent, nothing recorded.
    one.send(m, {"u"}, {}, {"k5", "r"}, {});
    one.send(m, {"u"}, {"u"}, {"k6", "r"}, got.handler());
    drain(ioc);
    CHECK(of_type(*u, "N").size() == 6);
    CHECK(got.outcomes().back() == send_outcome::sent);
    two.send(m, {"u"}, {}, {"k6", "r"}, got.handler());
    drain(ioc);
    CHECK(got.outcomes().back() == send_outcome::sent);
    CHECK(of_type(*u, "N").size() == 7);
}

TEST_CASE("idempotent send: an offline id gets the message stored once") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    session_server one{ioc, in_cluster(hub)}, two{ioc, in_cluster(hub)};
    start_trusting(one, two);
    answers got;
    one.send(mesa::message("S", object{}), {"away"}, {}, {"k", "stored"}, got.handler());
    drain(ioc);
    two.send(mesa::message("S", object{}), {"away"}, {}, {"k", "stored"}, got.handler());
    drain(ioc);
    CHECK(got.outcomes() == std::vector<send_outcome>{send_outcome::sent, send_outcome::replayed});
    auto away = mesa::test::connect_as(one, "away");
    drain(ioc);
    CHECK(of_type(*away, "S").size() == 1);
}

TEST_CASE("idempotent send: a refused attempt is not remembered; one taken but unconfirmed is") {
    using server_type = mesa::server<mesa::transport::memory, failing_broker, mesa::authentication, mesa::sync>;
    asio::io_context ioc;
    server_type s{ioc};
    mesa::test::trust_ids(s);
    s.start();
    answers got;
    auto const m = mesa::message("N", object{});

    s.broker().fail_next = std::make_error_code(std::errc::connection_reset);
    s.send(m, {"u"}, {}, {"refused", "r"}, got.handler());
    drain(ioc);
    s.send(m, {"u"}, {}, {"refused", "r"}, got.handler());
    drain(ioc);
    CHECK(got.errors.at(0) == std::errc::connection_reset);
    CHECK_FALSE(got.errors.at(1));
    CHECK(got.outcomes().at(1) == send_outcome::sent);  // the retry sends, not 409

    s.broker().fail_next = mesa::broker::redis_errc::not_replicated;
    s.send(m, {"u"}, {}, {"unconfirmed", "u"}, got.handler());
    drain(ioc);
    s.send(m, {"u"}, {}, {"unconfirmed", "u"}, got.handler());
    drain(ioc);
    CHECK(got.errors.at(2) == mesa::broker::condition::taken_unconfirmed);
    CHECK(got.outcomes().at(3) == send_outcome::replayed);
    CHECK(got.results.at(3).result == "u");
}
