// The memory broker's contract, and swapping in a test double.
#include <mesa/broker/memory.hpp>
#include <mesa/broker/requirements.hpp>

#include "../support/memory_server.hpp"
#include "../support/recording_broker.hpp"

#include <doctest/doctest.h>

#include <thread>

using mesa::test::drain;

static_assert(mesa::broker::check<mesa::broker::memory>());
static_assert(mesa::broker::check<mesa::test::recording_broker>());

TEST_CASE("publications reach every subscriber of the cluster, the publisher included, in order") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    mesa::broker::memory a{ioc.get_executor(), {hub}}, b{ioc.get_executor(), {hub}};
    std::vector<std::string> got_a, got_b;
    a.subscribe("ws", [&](std::string_view p) { got_a.emplace_back(p); });
    b.subscribe("ws", [&](std::string_view p) { got_b.emplace_back(p); });
    b.subscribe("other", [&](std::string_view) { FAIL("wrong channel"); });
    a.publish("ws", "1");
    b.publish("ws", "2");
    CHECK(got_a.empty());  // never inline: handlers run from the executor
    drain(ioc);
    CHECK(got_a == std::vector<std::string>{"1", "2"});
    CHECK(got_b == std::vector<std::string>{"1", "2"});
}

TEST_CASE("a destroyed broker's subscriptions end") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    mesa::broker::memory a{ioc.get_executor(), {hub}};
    int calls = 0;
    {
        mesa::broker::memory b{ioc.get_executor(), {hub}};
        b.subscribe("ws", [&](std::string_view) { ++calls; });
        a.publish("ws", "queued before destruction");
    }
    a.publish("ws", "after");
    drain(ioc);
    CHECK(calls == 0);
}

TEST_CASE("sets and counters are shared by the cluster") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    mesa::broker::memory a{ioc.get_executor(), {hub}}, b{ioc.get_executor(), {hub}};
    a.set_add("connected_clients", "alice");
    b.set_add("connected_clients", "bob");
    b.set_remove("connected_clients", "bob");
    a.counter_add("connected_clients_count", 3);
    b.counter_add("connected_clients_count", -1);
    std::vector<bool> found;
    std::vector<std::string> members;
    std::int64_t count = 0;
    b.set_contains("connected_clients", {"alice", "bob"}, [&](std::error_code, std::vector<bool> f) { found = f; });
    a.set_members("connected_clients", [&](std::error_code, std::vector<std::string> m) { members = m; });
    a.counter_get("connected_clients_count", [&](std::error_code, std::int64_t n) { count = n; });
    drain(ioc);
    CHECK(found == std::vector<bool>{true, false});
    CHECK(members == std::vector<std::string>{"alice"});
    CHECK(count == 2);
}

TEST_CASE("backlogs append in order, drop the oldest past the bound, and are taken whole") {
    asio::io_context ioc;
    mesa::broker::memory b{ioc.get_executor()};
    std::int64_t dropped = -1;
    for (int i = 1; i <= 5; ++i) b.backlog_append("undelivered_messages", "u", std::to_string(i), 3);
    b.backlog_append("undelivered_messages", "u", "6", 3, [&](std::error_code, std::int64_t d) { dropped = d; });
    std::vector<std::string> first, second;
    b.backlog_take("undelivered_messages", "u", [&](std::error_code, std::vector<std::string> m) { first = m; });
    b.backlog_take("undelivered_messages", "u", [&](std::error_code, std::vector<std::string> m) { second = m; });
    drain(ioc);
    CHECK(dropped == 1);
    CHECK(first == std::vector<std::string>{"4", "5", "6"});
    CHECK(second.empty());
}

TEST_CASE("concurrent appenders on several threads lose nothing") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    constexpr int threads = 4, per_thread = 250;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([hub, t] {
            asio::io_context ioc;
            mesa::broker::memory b{ioc.get_executor(), {hub}};
            for (int i = 0; i < per_thread; ++i) b.backlog_append("h", "u", std::to_string(t * 1000 + i), 0);
            drain(ioc);
        });
    }
    for (auto& w : workers) w.join();
    asio::io_context ioc;
    mesa::broker::memory b{ioc.get_executor(), {hub}};
    std::vector<std::string> taken;
    b.backlog_take("h", "u", [&](std::error_code, std::vector<std::string> m) { taken = m; });
    drain(ioc);
    CHECK(taken.size() == threads * per_thread);
}

TEST_CASE("a test can swap in a recording broker and see what the server told the cluster") {
    using server_type = mesa::server<mesa::transport::memory, mesa::test::recording_broker, mesa::authentication>;
    asio::io_context ioc;
    server_type::options o;
    o.namespace_name = "chat";
    server_type s{ioc, o};
    s.feature<mesa::authentication>().on_authenticate(
        [](auto const&, mesa::json::object const&, mesa::authentication::done done) { done.succeed("u1"); });
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    peer->send_text(R"({"op":2,"d":{"token":"t"}})");
    drain(ioc);
    s.send(mesa::message("HELLO", {}), {"u1"});
    drain(ioc);
    peer->close();
    drain(ioc);

    auto& broker = s.broker();
    REQUIRE(broker.publications.size() == 1);
    CHECK(broker.publications[0].channel == "ws_chat");
    CHECK(broker.publications[0].payload ==
          R"({"message":{"op":0,"d":{},"t":"HELLO"},"recipients":["u1"],"origin":")" + s.instance_id() + "\"}");
    // Opened, authenticated as u1, closed: one atomic presence step each.
    auto const& changes = broker.presence_changes;
    REQUIRE(changes.size() == 3);
    CHECK((changes[0].connections == 1 && changes[0].id.empty()));
    CHECK((changes[1].connections == 0 && changes[1].id == "u1" && changes[1].sockets == 1));
    CHECK((changes[2].connections == -1 && changes[2].id == "u1" && changes[2].sockets == -1));
    CHECK(mesa::test::of_type(*peer, "HELLO").size() == 1);
}

TEST_CASE("connections opened or closed in one turn reach the cluster as one presence step, the count exact") {
    using server_type = mesa::server<mesa::transport::memory, mesa::test::recording_broker>;
    asio::io_context ioc;
    server_type s{ioc};
    s.start();
    drain(ioc);
    auto& broker = s.broker();
    auto count = [&] {
        std::int64_t n = -1;
        broker.counter_get("connected_clients_count", [&](std::error_code, std::int64_t v) { n = v; });
        drain(ioc);
        return n;
    };
    std::size_t const before = broker.presence_changes.size();
    std::vector<mesa::transport::memory::connection_ptr> peers;
    for (int i = 0; i < 100; ++i) peers.push_back(s.transport().connect("/"));  // one burst of handshakes
    drain(ioc);
    REQUIRE(broker.presence_changes.size() == before + 1);
    CHECK(broker.presence_changes.back().connections == 100);
    CHECK(count() == 100);
    for (int i = 0; i < 40; ++i) peers[i]->close();
    drain(ioc);
    REQUIRE(broker.presence_changes.size() == before + 2);
    CHECK(broker.presence_changes.back().connections == -40);
    CHECK(count() == 60);
}

namespace {

using claim_state = mesa::broker::claim_result::state;

mesa::broker::idempotency_claim claim_of(std::string const& token,
                                         std::chrono::milliseconds in_flight = std::chrono::seconds(10),
                                         std::string const& key = "order-42") {
    return {mesa::keys("chat").idempotency(key), token, in_flight};
}

}  // namespace

TEST_CASE("idempotent publish: one claim per key in the cluster; in flight, then the result, until released") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    mesa::broker::memory a{ioc.get_executor(), {hub}}, b{ioc.get_executor(), {hub}};
    std::vector<std::string> got;
    a.subscribe("ws", [&](std::string_view p) { got.emplace_back(p); });
    std::vector<mesa::broker::claim_result> found;
    auto record = [&](std::error_code ec, mesa::broker::claim_result c) {
        CHECK_FALSE(ec);
        found.push_back(std::move(c));
    };
    a.idempotent_publish(claim_of("first"), "ws", "1", record);
    b.idempotent_publish(claim_of("second"), "ws", "2", record);
    drain(ioc);
    REQUIRE(found.size() == 2);
    CHECK(found[0].status == claim_state::claimed);
    CHECK(found[1].status == claim_state::in_flight);
    CHECK(got == std::vector<std::string>{"1"});

    // A settle by an attempt that no longer holds the key changes nothing.
    b.idempotency_settle(claim_of("second"), "not mine", std::chrono::minutes(5));
    a.idempotency_settle(claim_of("first"), "the result", std::chrono::minutes(5));
    b.idempotent_publish(claim_of("third"), "ws", "3", record);
    drain(ioc);
    REQUIRE(found.size() == 3);
    CHECK(found[2].status == claim_state::done);
    CHECK(found[2].result == "the result");
    CHECK(got.size() == 1);

    // Another namespace's key of the same name is another key.
    b.idempotent_publish({mesa::keys("other").idempotency("order-42"), "x", std::chrono::seconds(10)}, "ws", "4",
                         record);
    drain(ioc);
    CHECK(found.back().status == claim_state::claimed);
}

TEST_CASE("idempotent publish: a released key and an expired in-flight mark are free again") {
    asio::io_context ioc;
    mesa::broker::memory b{ioc.get_executor()};
    std::vector<claim_state> found;
    auto record = [&](std::error_code, mesa::broker::claim_result c) { found.push_back(c.status); };
    b.idempotent_publish(claim_of("failed"), "ws", "1", record);
    drain(ioc);
    b.idempotency_release(claim_of("someone else"));  // not the holder: no effect
    b.idempotent_publish(claim_of("retry"), "ws", "1", record);
    drain(ioc);
    b.idempotency_release(claim_of("failed"));
    b.idempotent_publish(claim_of("retry"), "ws", "1", record);
    drain(ioc);

    // A sender that never finishes: its mark expires after in_flight_ttl.
    using std::chrono::milliseconds;
    b.idempotent_publish(claim_of("crashed", milliseconds(20), "order-43"), "ws", "2", record);
    b.idempotent_publish(claim_of("early", milliseconds(10000), "order-43"), "ws", "2", record);
    drain(ioc);
    std::this_thread::sleep_for(milliseconds(40));
    b.idempotent_publish(claim_of("late", milliseconds(10000), "order-43"), "ws", "2", record);
    drain(ioc);
    CHECK(found == std::vector<claim_state>{claim_state::claimed, claim_state::in_flight, claim_state::claimed,
                                            claim_state::claimed, claim_state::in_flight, claim_state::claimed});
}

TEST_CASE("idempotent route: stored once for an offline id, whichever broker of the cluster repeats it") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    mesa::broker::memory a{ioc.get_executor(), {hub}}, b{ioc.get_executor(), {hub}};
    mesa::keys const k("chat");
    std::vector<claim_state> found;
    std::vector<std::vector<std::string>> stored;
    auto record = [&](std::error_code ec, mesa::broker::claim_result c, mesa::broker::route_result r) {
        CHECK_FALSE(ec);
        found.push_back(c.status);
        stored.push_back(r.stored);
    };
    a.idempotent_route(k, claim_of("first"), R"({"op":0,"d":{}})", {"offline"}, 100, "a", record);
    b.idempotent_route(k, claim_of("second"), R"({"op":0,"d":{}})", {"offline"}, 100, "b", record);
    drain(ioc);
    CHECK(found == std::vector<claim_state>{claim_state::claimed, claim_state::in_flight});
    CHECK(stored == std::vector<std::vector<std::string>>{{"offline"}, {}});
    std::vector<std::string> backlog;
    a.backlog_take(k.undelivered_messages(), "offline",
                   [&](std::error_code, std::vector<std::string> m) { backlog = std::move(m); });
    drain(ioc);
    CHECK(backlog.size() == 1);
}

TEST_CASE("idempotency keys of two namespaces never share a Redis key, whatever the callers' keys are") {
    // Before: key "K_ns" without a namespace and key "K" in namespace "ns"
    // were both mesa_idempotency:K_ns, so one cluster replayed the other's.
    CHECK(mesa::keys().idempotency("K_ns") != mesa::keys("ns").idempotency("K"));
    CHECK(mesa::keys("a").idempotency("b_c") != mesa::keys("a_b").idempotency("c"));
    CHECK(mesa::keys("ns").idempotency("K") == "mesa_idempotency:1:K_ns");
}
