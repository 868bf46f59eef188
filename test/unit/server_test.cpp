// The server on the in-memory transport: hello, events, bad input, sending,
// clusters of instances on one memory broker.
#include "../support/memory_server.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using mesa::json::object;
using mesa::test::auth_frame;
using mesa::test::drain;
using mesa::test::frame;
using mesa::test::memory_server;
using mesa::test::messages_of;
using mesa::test::of_type;
using mesa::test::trust_ids;

namespace {

using plain_server = memory_server<>;
using featured_server = memory_server<mesa::heartbeat, mesa::authentication, mesa::reconnect>;

template <class Server>
void echo_pings(Server& s) {
    s.on_message([](auto const& c, mesa::message const& m) {
        if (m.t == std::string("PING")) c->send(mesa::message("PONG", m.d));
    });
}

}  // namespace

TEST_CASE("a featureless server compiles no feature in and carries no feature state") {
    static_assert(!plain_server::has<mesa::heartbeat>);
    static_assert(featured_server::has<mesa::heartbeat>);
    static_assert(featured_server::has<mesa::authentication>);
    static_assert(std::tuple_size_v<plain_server::feature_states> == 0);
    static_assert(std::is_empty_v<plain_server::feature_states>);
    CHECK(sizeof(plain_server::client) < sizeof(featured_server::client));
}

TEST_CASE("the hello is the first frame and always has rules") {
    asio::io_context ioc;
    plain_server s{ioc};
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    auto got = messages_of(*peer);
    REQUIRE(got.size() == 1);
    CHECK(got[0].op == mesa::opcode::hello);
    REQUIRE(got[0].d.contains("rules"));
    CHECK(got[0].d.at("rules").as_array().empty());
    CHECK_FALSE(got[0].d.contains("c_heartbeat_interval"));
}

TEST_CASE("events: connection, message on client and server, disconnection with code") {
    asio::io_context ioc;
    plain_server s{ioc};
    int connections = 0, server_messages = 0, client_messages = 0;
    std::uint16_t closed_with = 0;
    s.on_connection([&](auto const& c) {
        ++connections;
        c->on_message([&](mesa::message const& m) {
            CHECK(m.t == std::string("HI"));
            ++client_messages;
        });
    });
    s.on_message([&](auto const&, mesa::message const&) { ++server_messages; });
    s.on_disconnection([&](auto const& c, std::uint16_t code, std::string const&) {
        CHECK_FALSE(c->is_open());
        closed_with = code;
    });
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    peer->send_text(frame("HI"));
    drain(ioc);
    peer->close(4321);
    drain(ioc);
    CHECK(connections == 1);
    CHECK(client_messages == 1);
    CHECK(server_messages == 1);
    CHECK(closed_with == 4321);
    CHECK(s.clients().empty());
}

TEST_CASE("PING is answered with PONG and the same data") {
    asio::io_context ioc;
    plain_server s{ioc};
    echo_pings(s);
    s.start();
    auto peer = s.transport().connect("/ws");
    drain(ioc);
    peer->send_text(frame("PING", object{{"n", 42}, {"text", "héllo"}}));
    drain(ioc);
    auto pongs = of_type(*peer, "PONG");
    REQUIRE(pongs.size() == 1);
    CHECK(pongs[0].d == object{{"n", 42}, {"text", "héllo"}});
}

TEST_CASE("a configured path refuses other paths with 404, with or without query") {
    asio::io_context ioc;
    plain_server::options o;
    o.path = "/ws";
    plain_server s{ioc, o};
    s.start();
    CHECK(s.transport().connect("/ws")->http_status() == 101);
    CHECK(s.transport().connect("/ws?token=1")->http_status() == 101);
    auto refused = s.transport().connect("/other");
    CHECK(refused->http_status() == 404);
    CHECK_FALSE(refused->open());
}

TEST_CASE("bad input closes only the offending client, with the right code and an error event") {
    struct bad_case {
        bool binary;
        std::string payload;
        std::uint16_t code;
    };
    bad_case const cases[] = {
        {false, "definitely not json", 1007},    {false, "[1,2,3]", 1007}, {false, R"({"op":"zero"})", 1007},
        {false, R"({"op":0,"d":"text"})", 1007}, {true, "\x01\x02", 1003}, {false, std::string(2048, ' '), 1009},
    };
    for (auto const& c : cases) {
        CAPTURE(c.payload.substr(0, 20));
        asio::io_context ioc;
        plain_server::options o;
        o.max_frame_bytes = 1024;
        plain_server s{ioc, o};
        echo_pings(s);
        std::vector<std::string> errors;
        s.on_error([&](auto const& e) { errors.push_back(e.what); });
        s.start();
        auto bad = s.transport().connect("/");
        auto good = s.transport().connect("/");
        drain(ioc);
        if (c.binary)
            bad->send_binary(c.payload);
        else
            bad->send_text(c.payload);
        good->send_text(frame("PING", object{{"still", true}}));
        drain(ioc);
        CHECK_FALSE(bad->open());
        CHECK(bad->close_code() == c.code);
        CHECK(good->open());
        CHECK(of_type(*good, "PONG").size() == 1);
        CHECK(errors.size() == 1);
    }
}

TEST_CASE("a throwing handler is reported and the server keeps serving") {
    asio::io_context ioc;
    plain_server s{ioc};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.on_message([](auto const& c, mesa::message const& m) {
        if (m.t == std::string("BOOM")) throw std::runtime_error("kaboom");
        c->send(mesa::message("OK", {}));
    });
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    peer->send_text(frame("BOOM"));
    peer->send_text(frame("AGAIN"));
    drain(ioc);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("kaboom") != std::string::npos);
    CHECK(peer->open());
    CHECK(of_type(*peer, "OK").size() == 1);
}

TEST_CASE("send reaches every client; client.send only one; disconnect closes with the code") {
    asio::io_context ioc;
    plain_server s{ioc};
    s.start();
    auto a = s.transport().connect("/");
    auto b = s.transport().connect("/");
    drain(ioc);
    s.send(mesa::message("ALL", object{{"x", 1}}));
    drain(ioc);
    CHECK(of_type(*a, "ALL").size() == 1);
    CHECK(of_type(*b, "ALL").size() == 1);

    s.clients().front()->send(mesa::message("ONE", {}));
    drain(ioc);
    CHECK(of_type(*a, "ONE").size() + of_type(*b, "ONE").size() == 1);

    s.clients().front()->disconnect(4100);
    drain(ioc);
    CHECK((a->close_code() == 4100) != (b->close_code() == 4100));
    CHECK(s.clients().size() == 1);
}

TEST_CASE("a burst of broadcasts reaches each client as one write, in order, behind nothing sent later") {
    asio::io_context ioc;
    plain_server s{ioc};
    s.start();
    auto a = s.transport().connect("/");
    auto b = s.transport().connect("/");
    drain(ioc);
    std::size_t const writes_before = a->writes();
    for (int i = 0; i < 50; ++i) s.send(mesa::message("ALL", object{{"i", i}}));
    drain(ioc);
    for (auto const* peer : {a.get(), b.get()}) {
        auto got = of_type(*peer, "ALL");
        REQUIRE(got.size() == 50);
        for (int i = 0; i < 50; ++i) CHECK(got[i].d.at("i").as_int64() == i);
    }
    CHECK(a->writes() == writes_before + 1);
    CHECK(s.stats().messages_sent == 2 + 2 * 50);

    // A direct send, a close or a new connection comes after the broadcasts sent before it.
    a->clear();
    b->clear();
    auto target = s.clients().front();
    auto& peer = target->connection() == a ? *a : *b;
    s.send(mesa::message("FIRST", {}));
    target->send(mesa::message("SECOND", {}));
    s.send(mesa::message("THIRD", {}));
    target->disconnect(4100);
    auto late = s.transport().connect("/");
    drain(ioc);
    std::vector<std::string> order;
    for (auto const& m : messages_of(peer)) order.push_back(*m.t);
    CHECK(order == std::vector<std::string>{"FIRST", "SECOND", "THIRD"});
    CHECK(peer.close_code() == 4100);
    CHECK(of_type(*late, "FIRST").empty());
    CHECK(of_type(*late, "THIRD").empty());
}

TEST_CASE("in a burst with exclusions, an excluded client gets the rest of the burst in order") {
    asio::io_context ioc;
    featured_server s{ioc};
    trust_ids(s);
    s.start();
    auto ann = mesa::test::connect_as(s, "ann");
    auto bob = mesa::test::connect_as(s, "bob");
    drain(ioc);
    ann->clear();
    bob->clear();
    s.send(mesa::message("ONE", {}));
    s.send(mesa::message("NOT_BOB", {}), {"*"}, {"bob"});
    s.send(mesa::message("TWO", {}));
    drain(ioc);
    auto types = [](auto const& peer) {
        std::vector<std::string> out;
        for (auto const& m : messages_of(peer))
            if (m.op == mesa::opcode::dispatch) out.push_back(*m.t);
        return out;
    };
    CHECK(types(*ann) == std::vector<std::string>{"ONE", "NOT_BOB", "TWO"});
    CHECK(types(*bob) == std::vector<std::string>{"ONE", "TWO"});
}

TEST_CASE("plain HTTP requests reach the handler; without one they get 426") {
    asio::io_context ioc;
    plain_server s{ioc};
    s.start();
    std::vector<int> statuses;
    auto get = [&](std::string target) {
        s.transport().request({"GET", std::move(target), {}, {}},
                              [&](mesa::http_response r) { statuses.push_back(r.status); });
    };
    get("/health");
    s.on_http([&](mesa::http_request const& r, mesa::http_responder respond) {
        if (r.target == "/later") return asio::post(ioc, [respond] { respond({202, {}, "later"}); });
        respond({r.target == "/health" ? 200 : 404, {}, "ok"});
    });
    get("/health");
    get("/nope");
    get("/later");
    CHECK(statuses == std::vector<int>{426, 200, 404});
    drain(ioc);
    CHECK(statuses == std::vector<int>{426, 200, 404, 202});
}

TEST_CASE("stop closes every client with 1001, cleans the cluster state at once, and refuses new connections") {
    using server_type = memory_server<mesa::authentication>;
    asio::io_context ioc;
    server_type s{ioc};
    s.feature<mesa::authentication>().on_authenticate(
        [](auto const&, object const&, mesa::authentication::done done) { done.succeed("u1"); });
    std::vector<std::uint16_t> codes;
    s.on_disconnection([&](auto const&, std::uint16_t code, std::string const&) { codes.push_back(code); });
    s.start();
    auto a = s.transport().connect("/");
    auto b = s.transport().connect("/");
    drain(ioc);
    a->send_text(R"({"op":2,"d":{}})");
    drain(ioc);
    s.stop();
    CHECK(codes == std::vector<std::uint16_t>{1001, 1001});  // finished before any I/O
    CHECK(s.clients().empty());
    drain(ioc);
    CHECK(a->close_code() == 1001);
    CHECK(b->close_code() == 1001);
    CHECK(codes.size() == 2);
    std::int64_t count = -1;
    std::vector<bool> online;
    s.broker().counter_get("connected_clients_count", [&](std::error_code, std::int64_t n) { count = n; });
    s.broker().set_contains("connected_clients", {"u1"}, [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(count == 0);
    CHECK(online == std::vector<bool>{false});
    CHECK_FALSE(s.transport().connect("/")->open());
}

TEST_CASE("stats count connections, frames and bytes both ways") {
    asio::io_context ioc;
    plain_server s{ioc};
    echo_pings(s);
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    std::string const ping = frame("PING", object{{"n", 1}});
    peer->send_text(ping);
    peer->send_text("garbage");
    drain(ioc);
    auto const& st = s.stats();
    CHECK(st.connections_accepted == 1);
    CHECK(st.messages_received == 2);
    CHECK(st.bytes_received == ping.size() + 7);
    CHECK(st.messages_sent == 2);  // hello and PONG
    CHECK(st.bytes_sent == peer->received()[0].size() + peer->received()[1].size());
}

TEST_CASE("the connected-clients counter follows connections") {
    asio::io_context ioc;
    plain_server::options o;
    o.namespace_name = "chat";
    plain_server s{ioc, o};
    s.start();
    auto a = s.transport().connect("/");
    auto b = s.transport().connect("/");
    drain(ioc);
    a->close();
    drain(ioc);
    std::int64_t count = -1;
    s.broker().counter_get("connected_clients_count_chat", [&](std::error_code, std::int64_t n) { count = n; });
    drain(ioc);
    CHECK(count == 1);
}

TEST_CASE("two instances form a cluster: each id gets a send exactly once") {
    using server_type = memory_server<mesa::authentication>;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    auto group = std::make_shared<mesa::instance_group>();
    server_type::options a, b;
    SUBCASE("on one memory broker") { a.broker.cluster = b.broker.cluster = hub; }
    SUBCASE("in one instance group, on brokers that do not join them") { a.group = b.group = group; }
    SUBCASE("in one instance group and on one broker") {
        a.broker.cluster = b.broker.cluster = hub;
        a.group = b.group = group;
    }
    asio::io_context ioc;
    server_type one{ioc, a}, two{ioc, b};
    trust_ids(one);
    trust_ids(two);
    one.start();
    two.start();
    auto alice = one.transport().connect("/");
    auto bob = two.transport().connect("/");
    auto carol = two.transport().connect("/");
    auto anonymous = one.transport().connect("/");
    drain(ioc);
    alice->send_text(auth_frame("alice"));
    bob->send_text(auth_frame("bob"));
    carol->send_text(auth_frame("carol"));
    drain(ioc);

    one.send(mesa::message("TO_BOB", {}), {"bob"});
    drain(ioc);
    CHECK(of_type(*bob, "TO_BOB").size() == 1);
    CHECK(of_type(*alice, "TO_BOB").empty());
    CHECK(of_type(*carol, "TO_BOB").empty());

    two.send(mesa::message("EVERYONE", {}));
    drain(ioc);
    for (auto const& p : {alice, bob, carol, anonymous}) CHECK(of_type(*p, "EVERYONE").size() == 1);

    one.send(mesa::message("BUT_CAROL", {}), {"*"}, {"carol"});
    drain(ioc);
    CHECK(of_type(*carol, "BUT_CAROL").empty());
    for (auto const& p : {alice, bob, anonymous}) CHECK(of_type(*p, "BUT_CAROL").size() == 1);

    two.send(mesa::message("PAIR", {}), {"alice", "carol", "bob"}, {"bob"});
    drain(ioc);
    CHECK(of_type(*alice, "PAIR").size() == 1);
    CHECK(of_type(*carol, "PAIR").size() == 1);
    CHECK(of_type(*bob, "PAIR").empty());
}

TEST_CASE("a DISCONNECT_CLIENT event on the ws channel closes the named clients with 1000") {
    using server_type = memory_server<mesa::authentication>;
    asio::io_context ioc;
    server_type s{ioc};
    trust_ids(s);
    s.start();
    auto alice = s.transport().connect("/");
    auto bob = s.transport().connect("/");
    drain(ioc);
    alice->send_text(auth_frame("alice"));
    bob->send_text(auth_frame("bob"));
    drain(ioc);
    s.broker().publish("ws", R"({"message":{"op":5,"d":{},"t":"DISCONNECT_CLIENT"},"recipients":["alice"]})");
    drain(ioc);
    CHECK(alice->close_code() == 1000);
    CHECK(bob->open());
    CHECK(of_type(*bob, "DISCONNECT_CLIENT").empty());
}

TEST_CASE("a malformed ws publication is reported, not delivered, and the server goes on") {
    asio::io_context ioc;
    plain_server s{ioc};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    s.broker().publish("ws", "{broken");
    s.send(mesa::message("AFTER", {}));
    drain(ioc);
    CHECK(errors.size() == 1);
    CHECK(of_type(*peer, "AFTER").size() == 1);
}

TEST_CASE("local clients are served even when the broker drops publications") {
    // A broker that never delivers publications, as Redis during an outage.
    struct deaf_broker : mesa::broker::memory {
        using mesa::broker::memory::memory;
        void publish(std::string const&, std::string, mesa::broker::completion = {}) {}
    };
    using server_type = mesa::server<mesa::transport::memory, deaf_broker>;
    asio::io_context ioc;
    server_type s{ioc};
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    s.send(mesa::message("LOCAL", {}));
    drain(ioc);
    CHECK(of_type(*peer, "LOCAL").size() == 1);
}

TEST_CASE("a server does not deliver its own publication twice, but does deliver a dispatcher's") {
    asio::io_context ioc;
    plain_server s{ioc};
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    s.send(mesa::message("ONCE", {}));
    s.broker().publish("ws", R"({"message":{"op":0,"d":{},"t":"FROM_NODE"},"recipients":["*"]})");
    drain(ioc);
    CHECK(of_type(*peer, "ONCE").size() == 1);
    CHECK(of_type(*peer, "FROM_NODE").size() == 1);
}
