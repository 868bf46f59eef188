// sync: storing messages for offline ids and redelivering them in order.
#include "../support/memory_server.hpp"

#include <doctest/doctest.h>

using mesa::json::object;
using mesa::test::auth_frame;
using mesa::test::drain;
using mesa::test::memory_server;
using mesa::test::messages_of;
using mesa::test::of_type;
using mesa::test::run_until;
using mesa::test::trust_ids;

namespace {

using sync_server = memory_server<mesa::authentication, mesa::sync>;

mesa::message numbered(int n) { return mesa::message("N", object{{"n", n}}); }

}  // namespace

TEST_CASE("messages for an offline id are stored and redelivered in order with s = 1..n") {
    asio::io_context ioc;
    sync_server s{ioc};
    trust_ids(s);
    s.start();
    for (int i = 1; i <= 5; ++i) s.send(numbered(i), {"bob"});
    drain(ioc);

    std::vector<std::string> stored;
    s.broker().backlog_take("undelivered_messages", "bob",
                            [&](std::error_code, std::vector<std::string> t) { stored = t; });
    drain(ioc);
    REQUIRE(stored.size() == 5);
    CHECK(stored[0] == R"({"op":0,"d":{"n":1},"t":"N"})");
    for (auto& t : stored) s.broker().backlog_append("undelivered_messages", "bob", t, 0);  // put back

    auto bob = s.transport().connect("/");
    bob->send_text(auth_frame("bob"));
    drain(ioc);
    auto got = of_type(*bob, "N");
    REQUIRE(got.size() == 5);
    for (int i = 0; i < 5; ++i) {
        CHECK(got[i].d.at("n") == i + 1);
        CHECK(got[i].s == i + 1);
    }

    // Taken: a second authentication redelivers nothing.
    bob->clear();
    bob->send_text(auth_frame("bob"));
    drain(ioc);
    CHECK(of_type(*bob, "N").empty());
}

TEST_CASE("online ids get the message live; offline ones get it later; sync:false is never stored") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    sync_server::options o;
    o.broker.cluster = hub;
    sync_server one{ioc, o}, two{ioc, o};
    trust_ids(one);
    trust_ids(two);
    one.start();
    two.start();
    auto alice = two.transport().connect("/");
    alice->send_text(auth_frame("alice"));
    drain(ioc);

    one.send(mesa::message("LIVE", {}), {"alice", "carol"});
    auto ephemeral = mesa::message("TYPING", {});
    ephemeral.sync = false;
    one.send(ephemeral, {"carol"});
    drain(ioc);
    CHECK(of_type(*alice, "LIVE").size() == 1);
    CHECK_FALSE(of_type(*alice, "LIVE")[0].s);

    auto carol = one.transport().connect("/");
    carol->send_text(auth_frame("carol"));
    drain(ioc);
    auto got = of_type(*carol, "LIVE");
    REQUIRE(got.size() == 1);
    CHECK(got[0].s == 1);
    CHECK(of_type(*carol, "TYPING").empty());
}

TEST_CASE("shouldSync false drops the backlog") {
    asio::io_context ioc;
    sync_server s{ioc};
    trust_ids(s);
    s.start();
    s.send(numbered(1), {"dan"});
    drain(ioc);
    auto dan = s.transport().connect("/");
    dan->send_text(auth_frame("dan", false));
    drain(ioc);
    CHECK(of_type(*dan, "N").empty());
    dan->close();
    drain(ioc);
    auto again = s.transport().connect("/");
    again->send_text(auth_frame("dan"));
    drain(ioc);
    CHECK(of_type(*again, "N").empty());
}

TEST_CASE("redelivery_interval paces redelivery one message per interval, in order") {
    asio::io_context ioc;
    sync_server::options o;
    o.feature<mesa::sync>().redelivery_interval = std::chrono::milliseconds(15);
    sync_server s{ioc, o};
    trust_ids(s);
    s.start();
    for (int i = 1; i <= 4; ++i) s.send(numbered(i), {"eve"});
    drain(ioc);
    auto eve = s.transport().connect("/");
    eve->send_text(auth_frame("eve"));
    drain(ioc);
    CHECK(of_type(*eve, "N").size() == 1);  // the first at once, the rest paced
    REQUIRE(run_until(ioc, [&] { return of_type(*eve, "N").size() == 4; }));
    auto got = of_type(*eve, "N");
    for (int i = 0; i < 4; ++i) CHECK(got[i].s == i + 1);
}

TEST_CASE("the backlog per id is bounded and every drop is reported") {
    asio::io_context ioc;
    sync_server::options o;
    o.feature<mesa::sync>().max_backlog = 3;
    sync_server s{ioc, o};
    trust_ids(s);
    std::int64_t dropped = 0;
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.feature<mesa::sync>().on_backlog_overflow([&](std::string const& id, std::int64_t n) {
        CHECK(id == "fay");
        dropped += n;
    });
    s.start();
    for (int i = 1; i <= 5; ++i) s.send(numbered(i), {"fay"});
    drain(ioc);
    CHECK(dropped == 2);
    CHECK(errors.size() == 2);
    auto fay = s.transport().connect("/");
    fay->send_text(auth_frame("fay"));
    drain(ioc);
    auto got = of_type(*fay, "N");
    REQUIRE(got.size() == 3);
    CHECK(got[0].d.at("n") == 3);  // the oldest went first
    CHECK(got[2].d.at("n") == 5);
}

TEST_CASE("a message stored by a Node dispatcher (with o) is redelivered without o") {
    asio::io_context ioc;
    sync_server s{ioc};
    trust_ids(s);
    s.start();
    s.broker().backlog_append("undelivered_messages", "gus",
                              R"({"op":0,"d":{"x":1},"t":"FROM_NODE","o":{"sync":true}})", 0);
    drain(ioc);
    auto gus = s.transport().connect("/");
    gus->send_text(auth_frame("gus"));
    drain(ioc);
    REQUIRE(of_type(*gus, "FROM_NODE").size() == 1);
    CHECK(gus->received().back() == R"({"op":0,"d":{"x":1},"t":"FROM_NODE","s":1})");
}
