// Feature policies on the in-memory transport: heartbeat, reconnect,
// authentication.
#include "../support/memory_server.hpp"

#include <doctest/doctest.h>

using mesa::json::object;
using mesa::test::auth_with;
using mesa::test::drain;
using mesa::test::memory_server;
using mesa::test::messages_of;
using mesa::test::run_until;

TEST_CASE("heartbeat state machine follows the reference algorithm") {
    using a = mesa::heartbeat::action;
    mesa::heartbeat::state s;
    CHECK(mesa::heartbeat::next(s, 2) == a::beat);   // first beat
    CHECK(mesa::heartbeat::next(s, 2) == a::retry);  // no ack: tries 1
    CHECK(s.attempts == 1);
    s.acked = true;
    CHECK(mesa::heartbeat::next(s, 2) == a::beat);  // ack resets
    CHECK(s.attempts == 0);
    CHECK(mesa::heartbeat::next(s, 2) == a::retry);
    CHECK(mesa::heartbeat::next(s, 2) == a::retry);
    CHECK(s.attempts == 2);
    CHECK(mesa::heartbeat::next(s, 2) == a::close);
}

TEST_CASE("hello advertises each listed feature's settings") {
    using server_type = memory_server<mesa::heartbeat, mesa::reconnect, mesa::authentication>;
    asio::io_context ioc;
    server_type::options o;
    o.feature<mesa::heartbeat>().interval = std::chrono::milliseconds(2500);
    o.feature<mesa::reconnect>().interval = std::chrono::milliseconds(750);
    server_type s{ioc, o};
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    auto hello = messages_of(*peer).at(0);
    CHECK(hello.op == mesa::opcode::hello);
    CHECK(hello.d.at("c_heartbeat_interval") == 2500);
    CHECK(hello.d.at("c_reconnect_interval") == 750);
    CHECK(hello.d.at("c_authentication_timeout") == 10000);
    CHECK(hello.d.at("rules") == mesa::json::array{"sends_user_object"});
}

TEST_CASE("a listed feature switched off at run time adds nothing to the hello") {
    using server_type = memory_server<mesa::heartbeat, mesa::reconnect>;
    asio::io_context ioc;
    server_type::options o;
    o.feature<mesa::heartbeat>().enabled = false;
    o.feature<mesa::reconnect>().enabled = false;
    server_type s{ioc, o};
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    auto hello = messages_of(*peer).at(0);
    CHECK(hello.d == object{{"rules", mesa::json::array{}}});
}

TEST_CASE("heartbeat sweeps send op 1, count missed acks and close past max_attempts") {
    using server_type = memory_server<mesa::heartbeat>;
    asio::io_context ioc;
    server_type::options o;
    o.feature<mesa::heartbeat>().max_attempts = 2;
    server_type s{ioc, o};
    std::uint16_t closed_with = 0;
    s.on_disconnection([&](auto const&, std::uint16_t code, std::string const&) { closed_with = code; });
    s.start();
    auto silent = s.transport().connect("/");
    auto alive = s.transport().connect("/");
    drain(ioc);
    auto& hb = s.feature<mesa::heartbeat>();
    for (int beat = 0; beat < 4; ++beat) {
        hb.sweep();
        alive->send_text(R"({"op":11,"d":{}})");
        drain(ioc);
    }
    auto got = messages_of(*silent);
    REQUIRE(got.size() == 4);  // hello + 3 beats, then closed
    CHECK(got[1] == mesa::message(mesa::opcode::heartbeat, {}));
    CHECK(got[2] == mesa::message(mesa::opcode::heartbeat, object{{"tries", 1}, {"max", 2}}));
    CHECK(got[3] == mesa::message(mesa::opcode::heartbeat, object{{"tries", 2}, {"max", 2}}));
    CHECK(silent->close_code() == mesa::close_code::heartbeat_timeout);
    CHECK(closed_with == mesa::close_code::heartbeat_timeout);

    CHECK(alive->open());
    auto beats = messages_of(*alive);
    REQUIRE(beats.size() == 5);
    for (std::size_t i = 1; i < beats.size(); ++i) CHECK(beats[i] == mesa::message(mesa::opcode::heartbeat, {}));
}

TEST_CASE("heartbeat runs on its own timer") {
    using server_type = memory_server<mesa::heartbeat>;
    asio::io_context ioc;
    server_type::options o;
    o.feature<mesa::heartbeat>().interval = std::chrono::milliseconds(20);
    o.feature<mesa::heartbeat>().max_attempts = 1;
    server_type s{ioc, o};
    s.start();
    auto silent = s.transport().connect("/");
    CHECK(run_until(ioc, [&] { return !silent->open(); }));
    CHECK(silent->close_code() == mesa::close_code::heartbeat_timeout);
}

namespace {

using auth_server = memory_server<mesa::authentication>;

}  // namespace

TEST_CASE("authentication success: op 22 once with the user, id set, connected set updated") {
    asio::io_context ioc;
    auth_server s{ioc};
    object seen;
    s.feature<mesa::authentication>().on_authenticate(
        [&](auto const&, object const& credentials, mesa::authentication::done done) {
            seen = credentials;
            done.succeed("u1", object{{"name", "Ada"}});
        });
    s.start();
    auto peer = s.transport().connect("/");
    // Sent before the hello was read, as clients commonly do.
    peer->send_text(auth_with({{"token", "abc"}, {"shouldSync", false}}));
    drain(ioc);
    peer->send_text(auth_with({{"token", "abc"}}));
    drain(ioc);

    auto got = messages_of(*peer);
    REQUIRE(got.size() == 2);  // hello, one op 22
    CHECK(got[1] == mesa::message(mesa::opcode::authenticated, object{{"name", "Ada"}}));
    CHECK(seen.at("token") == "abc");
    auto& c = *s.clients().at(0);
    CHECK(c.id() == "u1");
    CHECK(c.state<mesa::authentication>().authenticated);
    CHECK(c.state<mesa::authentication>().should_sync);  // the second attempt did not say false

    std::vector<bool> online;
    s.broker().set_contains("connected_clients", {"u1"}, [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(online == std::vector<bool>{true});

    peer->close();
    drain(ioc);
    s.broker().set_contains("connected_clients", {"u1"}, [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(online == std::vector<bool>{false});
}

TEST_CASE("send_user_object false sends an empty op 22 and no rule") {
    asio::io_context ioc;
    auth_server::options o;
    o.feature<mesa::authentication>().send_user_object = false;
    auth_server s{ioc, o};
    s.feature<mesa::authentication>().on_authenticate([](auto const&, object const&, mesa::authentication::done done) {
        done.succeed("u1", object{{"secret", 1}});
    });
    s.start();
    auto peer = s.transport().connect("/");
    peer->send_text(auth_with({}));
    drain(ioc);
    auto got = messages_of(*peer);
    REQUIRE(got.size() == 2);
    CHECK(got[0].d.at("rules").as_array().empty());
    CHECK(got[1] == mesa::message(mesa::opcode::authenticated, {}));
}

TEST_CASE("authentication may complete later, and a late verdict for a gone client is ignored") {
    asio::io_context ioc;
    auth_server s{ioc};
    std::vector<mesa::authentication::done> pending;
    s.feature<mesa::authentication>().on_authenticate(
        [&](auto const&, object const&, mesa::authentication::done done) { pending.push_back(std::move(done)); });
    s.start();
    auto stays = s.transport().connect("/");
    auto leaves = s.transport().connect("/");
    stays->send_text(auth_with({}));
    leaves->send_text(auth_with({}));
    drain(ioc);
    REQUIRE(pending.size() == 2);
    CHECK(messages_of(*stays).size() == 1);
    leaves->close();
    drain(ioc);
    pending[0].succeed("a");
    pending[1].succeed("b");
    drain(ioc);
    CHECK(messages_of(*stays).size() == 2);
    REQUIRE(s.clients().size() == 1);
    CHECK(s.clients()[0]->id() == "a");
}

TEST_CASE("authentication failure closes with 1008, or only reports when disconnect_on_fail is off") {
    for (bool disconnect : {true, false}) {
        CAPTURE(disconnect);
        asio::io_context ioc;
        auth_server::options o;
        o.feature<mesa::authentication>().disconnect_on_fail = disconnect;
        auth_server s{ioc, o};
        std::vector<std::string> errors;
        s.on_error([&](auto const& e) { errors.push_back(e.what); });
        s.feature<mesa::authentication>().on_authenticate(
            [](auto const&, object const&, mesa::authentication::done done) { done.fail("bad token"); });
        s.start();
        auto peer = s.transport().connect("/");
        peer->send_text(auth_with({{"token", "x"}}));
        drain(ioc);
        CHECK(peer->open() == !disconnect);
        if (disconnect) CHECK(peer->close_code() == 1008);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find("bad token") != std::string::npos);
        CHECK(messages_of(*peer).size() == 1);  // no op 22
    }
}

TEST_CASE("an id that cannot name one user (\"*\", empty) is a failed authentication, not a session") {
    // "*" in recipients means every client (PROTOCOL.md): a user with that id
    // would be addressed by every broadcast and could not be addressed alone.
    for (std::string id : {"*", ""}) {
        CAPTURE(id);
        asio::io_context ioc;
        auth_server s{ioc};
        std::vector<std::string> errors;
        s.on_error([&](auto const& e) { errors.push_back(e.what); });
        s.feature<mesa::authentication>().on_authenticate(
            [id](auto const&, object const&, mesa::authentication::done done) { done.succeed(id); });
        s.start();
        auto peer = s.transport().connect("/");
        peer->send_text(auth_with({{"token", "x"}}));
        drain(ioc);
        CHECK_FALSE(peer->open());
        CHECK(peer->close_code() == 1008);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find("authentication failed") != std::string::npos);
        CHECK(messages_of(*peer).size() == 1);  // no op 22
    }
}

TEST_CASE("authentication.required keeps server sends from unauthenticated clients") {
    asio::io_context ioc;
    auth_server::options o;
    o.feature<mesa::authentication>().required = true;
    auth_server s{ioc, o};
    s.feature<mesa::authentication>().on_authenticate(
        [](auto const&, object const&, mesa::authentication::done done) { done.succeed("u"); });
    s.start();
    auto anonymous = s.transport().connect("/");
    auto known = s.transport().connect("/");
    known->send_text(auth_with({}));
    drain(ioc);
    s.send(mesa::message("NEWS", {}));
    drain(ioc);
    CHECK(mesa::test::of_type(*known, "NEWS").size() == 1);
    CHECK(mesa::test::of_type(*anonymous, "NEWS").empty());
}

TEST_CASE("the authentication timeout is enforced with close code 4001") {
    asio::io_context ioc;
    auth_server::options o;
    o.feature<mesa::authentication>().timeout = std::chrono::milliseconds(30);
    auth_server s{ioc, o};
    s.feature<mesa::authentication>().on_authenticate(
        [](auto const&, object const&, mesa::authentication::done done) { done.succeed("u"); });
    s.start();
    auto late = s.transport().connect("/");
    auto prompt = s.transport().connect("/");
    prompt->send_text(auth_with({}));
    CHECK(run_until(ioc, [&] { return !late->open(); }));
    CHECK(late->close_code() == mesa::close_code::authentication_timeout);
    run_until(
        ioc, [] { return false; }, std::chrono::milliseconds(60));
    CHECK(prompt->open());
}

TEST_CASE("update_user replaces the user without a new op 22; before authentication it is an error") {
    asio::io_context ioc;
    auth_server s{ioc};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.feature<mesa::authentication>().on_authenticate([](auto const&, object const&, mesa::authentication::done done) {
        done.succeed("u", object{{"v", 1}});
    });
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    auto& c = *s.clients().at(0);
    s.feature<mesa::authentication>().update_user(c, object{{"v", 0}});
    CHECK(errors.size() == 1);
    peer->send_text(auth_with({}));
    drain(ioc);
    s.feature<mesa::authentication>().update_user(c, object{{"v", 2}});
    drain(ioc);
    CHECK(c.state<mesa::authentication>().user == object{{"v", 2}});
    CHECK(messages_of(*peer).size() == 2);
}

TEST_CASE("rate limit: a token bucket per connection; the excess closes with 4003") {
    using clock = std::chrono::steady_clock;
    mesa::rate_limit::options o;
    o.messages_per_second = 10;
    o.burst = 3;
    mesa::rate_limit::state st;
    auto t0 = clock::now();
    CHECK(mesa::rate_limit::take(st, o, t0));
    CHECK(mesa::rate_limit::take(st, o, t0));
    CHECK(mesa::rate_limit::take(st, o, t0));
    CHECK_FALSE(mesa::rate_limit::take(st, o, t0));                             // burst spent
    CHECK(mesa::rate_limit::take(st, o, t0 + std::chrono::milliseconds(150)));  // 1.5 tokens back
    CHECK_FALSE(mesa::rate_limit::take(st, o, t0 + std::chrono::milliseconds(160)));

    using server_type = memory_server<mesa::authentication, mesa::rate_limit>;
    asio::io_context ioc;
    server_type::options so;
    so.feature<mesa::rate_limit>().burst = 5;
    so.feature<mesa::rate_limit>().messages_per_second = 1;
    server_type s{ioc, so};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    int received = 0;
    s.on_message([&](auto const&, mesa::message const&) { ++received; });
    s.start();
    auto flood = s.transport().connect("/");
    auto calm = s.transport().connect("/");
    drain(ioc);
    flood->send_text(R"({"op":2,"d":{}})");  // counts too, whatever feature handles it
    for (int i = 0; i < 10; ++i) flood->send_text(mesa::test::frame("SPAM"));
    calm->send_text(mesa::test::frame("FINE"));
    drain(ioc);
    CHECK(received == 5);  // 4 SPAM (op 2 took a token) + FINE
    CHECK(flood->close_code() == mesa::close_code::rate_limited);
    CHECK(calm->open());
    REQUIRE_FALSE(errors.empty());
    CHECK(errors.back().find("client over 1 messages per second") != std::string::npos);
}

TEST_CASE("limits: max connections refuses with 503, a foreign Origin with 403") {
    using server_type = memory_server<>;
    asio::io_context ioc;
    server_type::options o;
    o.max_connections = 2;
    o.allowed_origins = {"https://app.example"};
    server_type s{ioc, o};
    s.start();
    CHECK(s.transport().connect("/", "https://evil.example")->http_status() == 403);
    auto a = s.transport().connect("/", "https://app.example");
    auto b = s.transport().connect("/");  // no Origin: not a browser, admitted
    drain(ioc);
    CHECK(a->open());
    CHECK(b->open());
    CHECK(s.transport().connect("/")->http_status() == 503);
    a->close();
    drain(ioc);
    CHECK(s.transport().connect("/")->http_status() == 101);
}

TEST_CASE("a client that stops reading is closed with 4002 once its backlog passes the bound; others go on") {
    using server_type = memory_server<>;
    asio::io_context ioc;
    server_type::options o;
    o.max_backlog_bytes = 10000;
    server_type s{ioc, o};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.start();
    auto slow = s.transport().connect("/");
    auto fast = s.transport().connect("/");
    drain(ioc);
    slow->stall();
    std::string const payload(500, 'x');
    for (int i = 0; i < 1000; ++i) s.send(mesa::message("BULK", object{{"p", payload}}));
    drain(ioc);
    CHECK(slow->close_code() == mesa::close_code::backlog_exceeded);
    // Nothing is queued after the bound but the burst of broadcasts that crossed it (at most 64 KiB).
    CHECK(mesa::transport::memory::buffered_bytes(slow) <= 10000 + 64 * 1024 + 600);
    CHECK(mesa::test::of_type(*fast, "BULK").size() == 1000);
    CHECK(errors.size() == 1);
}

TEST_CASE("one message larger than the backlog bound still reaches a client with nothing queued") {
    // The bound is on what already waits: a client that reads gets any message
    // up to max_frame_bytes (a reply to a large request, two large dispatches at once).
    using server_type = memory_server<>;
    asio::io_context ioc;
    server_type::options o;
    o.max_backlog_bytes = 1000;
    server_type s{ioc, o};
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    peer->stall();  // nothing is read while both are queued
    s.send_to(*s.clients().back(), mesa::message("BIG", object{{"p", std::string(1500, 'x')}}));
    drain(ioc);
    CHECK(peer->open());
    CHECK(mesa::transport::memory::buffered_bytes(peer) > 1500);  // queued, not refused
    s.send_to(*s.clients().back(), mesa::message("BIG", object{{"p", std::string(1500, 'x')}}));
    drain(ioc);
    CHECK(peer->close_code() == mesa::close_code::backlog_exceeded);  // 1500 bytes waited already
}

TEST_CASE("re-authenticating as another id takes the old id out of the connected set") {
    asio::io_context ioc;
    auth_server s{ioc};
    mesa::test::trust_ids(s);
    s.start();
    auto peer = s.transport().connect("/");
    peer->send_text(mesa::test::auth_frame("alice"));
    drain(ioc);
    peer->send_text(mesa::test::auth_frame("bob"));
    drain(ioc);
    std::vector<bool> online;
    s.broker().set_contains("connected_clients", {"alice", "bob"},
                            [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(online == std::vector<bool>{false, true});
    peer->close();
    drain(ioc);
    s.broker().set_contains("connected_clients", {"alice", "bob"},
                            [&](std::error_code, std::vector<bool> f) { online = f; });
    drain(ioc);
    CHECK(online == std::vector<bool>{false, false});
}

TEST_CASE("every refusal raises the error event once: upgrades refused with 404/403/503 and each close code") {
    using server_type = memory_server<mesa::heartbeat, mesa::authentication, mesa::version_rule, mesa::rate_limit>;
    asio::io_context ioc;
    server_type::options o;
    o.path = "/ws";
    o.max_connections = 9;
    o.max_frame_bytes = 1024;
    o.max_backlog_bytes = 1000;
    o.allowed_origins = {"https://app.example"};
    o.feature<mesa::heartbeat>().max_attempts = 0;
    o.feature<mesa::authentication>().timeout = std::chrono::hours(1);
    o.feature<mesa::version_rule>().version = "1.5.8";
    o.feature<mesa::rate_limit>().burst = 3;
    o.feature<mesa::rate_limit>().messages_per_second = 1;
    server_type s{ioc, o};
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.feature<mesa::authentication>().on_authenticate(
        [](auto const&, object const&, mesa::authentication::done done) { done.fail("bad token"); });
    s.start();

    auto expect_one_error = [&](std::string const& what) {
        CAPTURE(what);
        CHECK(errors.size() == 1);
        errors.clear();
    };
    CHECK(s.transport().connect("/elsewhere")->http_status() == 404);
    expect_one_error("404");
    CHECK(s.transport().connect("/ws", "https://evil.example")->http_status() == 403);
    expect_one_error("403");

    // One peer per close code; each refusal is checked alone.
    auto open_peer = [&] {
        auto p = s.transport().connect("/ws");
        drain(ioc);
        REQUIRE(p->open());
        return p;
    };
    auto refused_with = [&](std::uint16_t code, auto&& provoke) {
        CAPTURE(code);
        auto p = open_peer();
        provoke(*p);
        drain(ioc);
        CHECK(p->close_code() == code);
        expect_one_error(std::to_string(code));
    };
    refused_with(1002, [](auto& p) { p.send_text(mesa::test::frame("CLIENT_VERSION", object{{"v", "0.0.1"}})); });
    refused_with(1003, [](auto& p) { p.send_binary("\x01"); });
    refused_with(1007, [](auto& p) { p.send_text("not json"); });
    refused_with(1008, [](auto& p) { p.send_text(mesa::test::auth_with({})); });
    refused_with(1009, [](auto& p) { p.send_text(std::string(2000, ' ')); });
    refused_with(4000, [&](auto&) {
        s.feature<mesa::heartbeat>().sweep();  // the first beat
        s.feature<mesa::heartbeat>().sweep();  // unanswered: past max_attempts 0
    });
    refused_with(4002, [&](auto& p) {
        p.stall();
        for (int i = 0; i < 2; ++i)
            s.send_to(*s.clients().back(), mesa::message("BIG", object{{"p", std::string(2000, 'x')}}));
    });
    refused_with(4003, [](auto& p) {
        for (int i = 0; i < 5; ++i) p.send_text(mesa::test::frame("SPAM"));
    });

    // 4001 on a server whose timeout is short.
    {
        auth_server::options ao;
        ao.feature<mesa::authentication>().timeout = std::chrono::milliseconds(10);
        auth_server a{ioc, ao};
        a.on_error([&](auto const& e) { errors.push_back(e.what); });
        a.start();
        auto late = a.transport().connect("/");
        CHECK(run_until(ioc, [&] { return !late->open(); }));
        CHECK(late->close_code() == mesa::close_code::authentication_timeout);
        drain(ioc);
        expect_one_error("4001");
    }

    // 503: nine open connections fill the server.
    std::vector<mesa::transport::memory::connection_ptr> filling;
    while (s.clients().size() < 9) filling.push_back(open_peer());
    CHECK(s.transport().connect("/ws")->http_status() == 503);
    expect_one_error("503");

    // Closes that are not refusals raise nothing.
    filling.back()->close(1000);
    s.clients().front()->disconnect(1000);
    drain(ioc);
    CHECK(errors.empty());
}
