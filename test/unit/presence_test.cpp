// Exact presence and gapless sync on the memory broker: several instances of
// one cluster (each on its own io_context, driven in turn from this thread).
#include "../support/memory_server.hpp"

#include <doctest/doctest.h>

#include <set>

using mesa::json::object;
using mesa::test::auth_frame;
using mesa::test::drain;
using mesa::test::memory_server;
using mesa::test::of_type;
using mesa::test::run_until;
using mesa::test::trust_ids;

namespace {

using synced_server = memory_server<mesa::authentication, mesa::sync>;

struct instance {
    instance(std::shared_ptr<mesa::broker::memory::hub> hub, std::chrono::milliseconds ttl = std::chrono::seconds(15),
             std::chrono::milliseconds redelivery = {}) {
        synced_server::options o;
        o.broker.cluster = std::move(hub);
        o.presence_ttl = ttl;
        o.feature<mesa::sync>().redelivery_interval = redelivery;
        o.feature<mesa::sync>().confirm_interval = {};  // op 1 at once: drain() sees confirmations
        server = std::make_unique<synced_server>(ioc, o);
        trust_ids(*server);
        server->start();
        drain(ioc);
    }
    asio::io_context ioc;
    std::unique_ptr<synced_server> server;
};

/// What the cluster's connected set and count say now (read through a broker of the hub).
struct cluster_view {
    explicit cluster_view(std::shared_ptr<mesa::broker::memory::hub> hub) : broker(ioc.get_executor(), {hub}) {}
    std::set<std::string> connected() {
        std::set<std::string> out;
        broker.set_members("connected_clients",
                           [&](std::error_code, std::vector<std::string> m) { out.insert(m.begin(), m.end()); });
        drain(ioc);
        return out;
    }
    std::int64_t count() {
        std::int64_t n = -1;
        broker.counter_get("connected_clients_count", [&](std::error_code, std::int64_t v) { n = v; });
        drain(ioc);
        return n;
    }
    asio::io_context ioc;
    mesa::broker::memory broker;
};

void drain_all(std::initializer_list<instance*> list) {
    for (int round = 0; round < 3; ++round)
        for (auto* i : list) drain(i->ioc);
}

}  // namespace

TEST_CASE("an id stays connected while any of its sockets is open on any instance") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    instance a{hub}, b{hub};
    cluster_view view{hub};
    auto tab1 = mesa::test::connect_as(*a.server, "u1");
    auto tab2 = mesa::test::connect_as(*b.server, "u1");
    drain_all({&a, &b});
    CHECK(view.connected() == std::set<std::string>{"u1"});
    CHECK(view.count() == 2);

    tab1->close();
    drain_all({&a, &b});
    CHECK(view.connected() == std::set<std::string>{"u1"});
    CHECK(view.count() == 1);

    // A synced send now reaches the open tab instead of waiting in the backlog.
    a.server->send(mesa::message("AFTER", {}), {"u1"});
    drain_all({&a, &b});
    CHECK(of_type(*tab2, "AFTER").size() == 1);

    tab2->close();
    drain_all({&a, &b});
    CHECK(view.connected().empty());
    CHECK(view.count() == 0);
}

TEST_CASE("a crashed instance's ids and connections are reaped; messages for them are stored and redelivered") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    auto const ttl = std::chrono::milliseconds(60);
    instance b{hub, ttl};
    cluster_view view{hub};
    {
        instance a{hub, ttl};
        auto u1 = mesa::test::connect_as(*a.server, "u1");
        drain_all({&a, &b});
        REQUIRE(view.connected() == std::set<std::string>{"u1"});
        // `a` ends without stop(): as after SIGKILL, nothing is withdrawn.
    }
    CHECK(view.connected() == std::set<std::string>{"u1"});
    REQUIRE(run_until(b.ioc, [&] { return view.connected().empty(); }));
    CHECK(view.count() == 0);

    b.server->send(mesa::message("WHILE_AWAY", {}), {"u1"});
    drain(b.ioc);
    auto back = mesa::test::connect_as(*b.server, "u1");
    drain(b.ioc);
    auto got = of_type(*back, "WHILE_AWAY");
    REQUIRE(got.size() == 1);
    CHECK(got[0].s == 1);
}

TEST_CASE("an instance reaped while only paused notices and registers its sockets again") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    auto const ttl = std::chrono::milliseconds(60);
    instance a{hub, ttl}, b{hub, ttl};
    cluster_view view{hub};
    auto u1 = mesa::test::connect_as(*a.server, "u1");
    drain_all({&a, &b});
    REQUIRE(view.connected() == std::set<std::string>{"u1"});

    // `a` does not run (a long pause) while `b` reaps it.
    REQUIRE(run_until(b.ioc, [&] { return view.connected().empty(); }));
    b.server->send(mesa::message("DURING_PAUSE", {}), {"u1"});
    drain(b.ioc);

    // Back, `a` is told its epoch is stale, registers again, and flushes the
    // backlog stored for its ids meanwhile.
    REQUIRE(run_until(a.ioc, [&] { return view.connected() == std::set<std::string>{"u1"}; }));
    REQUIRE(run_until(a.ioc, [&] { return of_type(*u1, "DURING_PAUSE").size() == 1; }));
    CHECK(view.count() == 1);
    CHECK(u1->open());
}

TEST_CASE("recipients are a set: each socket gets a message once") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    instance a{hub};
    auto u1 = mesa::test::connect_as(*a.server, "u1");
    auto u1b = mesa::test::connect_as(*a.server, "u1");
    drain(a.ioc);
    a.server->send(mesa::message("NEWS", {}), {"u1", "u1"});
    a.server->send(mesa::message("ALL", {}), {"u1", "*", "*"});
    // As a Node Dispatcher publishes it.
    mesa::broker::memory node{a.ioc.get_executor(), {hub}};
    node.publish("ws", R"({"message":{"op":0,"d":{},"t":"FROM_NODE"},"recipients":["u1","u1"]})");
    drain(a.ioc);
    for (auto* peer : {u1.get(), u1b.get()}) {
        CHECK(of_type(*peer, "NEWS").size() == 1);
        CHECK(of_type(*peer, "ALL").size() == 1);
        CHECK(of_type(*peer, "FROM_NODE").size() == 1);
    }
    CHECK(mesa::addressed(mesa::message("X", {}), {"a", "b", "a"}, {"b"}).recipients == std::vector<std::string>{"a"});
}

TEST_CASE("a redelivery cut short keeps what was not confirmed, in order, for the next authentication") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    instance a{hub, std::chrono::seconds(15), std::chrono::milliseconds(20)};
    for (int n = 1; n <= 10; ++n) a.server->send(mesa::message("N", object{{"n", n}}), {"pat"});
    drain(a.ioc);
    auto pat = mesa::test::connect_as(*a.server, "pat");
    pat->answer_heartbeats();
    REQUIRE(run_until(a.ioc, [&] { return of_type(*pat, "N").size() >= 3; }));
    drain(a.ioc);  // the op 11 of the third is read
    auto const confirmed = of_type(*pat, "N").size();
    pat->close();
    REQUIRE(run_until(a.ioc, [&] { return a.server->clients().empty(); }));

    auto again = mesa::test::connect_as(*a.server, "pat");
    again->answer_heartbeats();
    REQUIRE(run_until(a.ioc, [&] {
        auto got = of_type(*again, "N");
        return !got.empty() && got.back().d.at("n").as_int64() == 10;
    }));
    // Nothing lost, nothing confirmed sent again, in order, numbered anew.
    auto got = of_type(*again, "N");
    REQUIRE(got.size() == 10 - confirmed);
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].d.at("n").as_int64() == static_cast<std::int64_t>(confirmed + i + 1));
        CHECK(got[i].s == static_cast<std::int64_t>(i + 1));
    }
}

TEST_CASE("messages sent to an online id stay in its outbox until a socket confirms them") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    instance a{hub};
    auto quiet = mesa::test::connect_as(*a.server, "q");  // never answers op 1
    drain(a.ioc);
    a.server->send(mesa::message("LIVE", object{{"n", 1}}), {"q"});
    a.server->send(mesa::message("LIVE", object{{"n", 2}}), {"q"});
    drain(a.ioc);
    REQUIRE(of_type(*quiet, "LIVE").size() == 2);
    quiet->close();
    drain(a.ioc);

    auto back = mesa::test::connect_as(*a.server, "q");
    back->answer_heartbeats();
    drain(a.ioc);
    auto got = of_type(*back, "LIVE");
    REQUIRE(got.size() == 2);  // unconfirmed: redelivered, in order
    CHECK(got[0].d.at("n").as_int64() == 1);
    CHECK(got[1].s == 2);
    back->close();
    drain(a.ioc);

    auto third = mesa::test::connect_as(*a.server, "q");
    drain(a.ioc);
    CHECK(of_type(*third, "LIVE").empty());  // confirmed by `back`'s op 11: gone
}

TEST_CASE("an id whose redeliveries are never confirmed has its backlog given up and reported") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    synced_server::options o;
    o.broker.cluster = hub;
    o.feature<mesa::sync>().max_attempts = 2;
    asio::io_context ioc;
    synced_server s{ioc, o};
    trust_ids(s);
    std::vector<std::pair<std::string, std::int64_t>> given_up;
    s.feature<mesa::sync>().on_backlog_overflow(
        [&](std::string const& id, std::int64_t n) { given_up.emplace_back(id, n); });
    s.start();
    s.send(mesa::message("N", {}), {"z"});
    drain(ioc);
    for (int attempt = 1; attempt <= 3; ++attempt) {
        auto z = mesa::test::connect_as(s, "z");
        drain(ioc);
        CHECK(of_type(*z, "N").size() == (attempt <= 2 ? 1u : 0u));
        z->close();
        drain(ioc);
    }
    CHECK(given_up == std::vector<std::pair<std::string, std::int64_t>>{{"z", 1}});
}

TEST_CASE("live messages wait behind the backlog being redelivered") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    instance a{hub, std::chrono::seconds(15), std::chrono::milliseconds(10)};
    for (int n = 1; n <= 3; ++n) a.server->send(mesa::message("N", object{{"n", n}}), {"pat"});
    drain(a.ioc);
    auto pat = mesa::test::connect_as(*a.server, "pat");
    drain(a.ioc);  // authenticated, backlog taken, first redelivered
    a.server->send(mesa::message("N", object{{"n", 4}}), {"pat"});
    REQUIRE(run_until(a.ioc, [&] { return of_type(*pat, "N").size() == 4; }));
    auto got = of_type(*pat, "N");
    for (int i = 0; i < 4; ++i) CHECK(got[i].d.at("n").as_int64() == i + 1);
    CHECK_FALSE(got[3].s.has_value());
}

TEST_CASE("a socket that authenticates gets what its id's other sockets were sent and did not confirm, first") {
    // u's only socket is on an instance that crashed and is not reaped yet:
    // a message for u is published to it and kept in u's outbox.
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    instance b{hub};
    {
        instance a{hub};
        mesa::test::connect_as(*a.server, "u");
        drain(a.ioc);
    }
    b.server->send(mesa::message("N", object{{"n", 1}}), {"u"});
    drain(b.ioc);
    auto tab = mesa::test::connect_as(*b.server, "u");
    tab->answer_heartbeats();
    drain(b.ioc);
    b.server->send(mesa::message("N", object{{"n", 2}}), {"u"});
    drain(b.ioc);
    auto got = of_type(*tab, "N");
    REQUIRE(got.size() == 2);
    CHECK(got[0].d.at("n").as_int64() == 1);
    CHECK(got[1].d.at("n").as_int64() == 2);

    // Confirmed by the tab: a later socket gets nothing again.
    auto later = mesa::test::connect_as(*b.server, "u");
    drain(b.ioc);
    CHECK(of_type(*later, "N").empty());
}
