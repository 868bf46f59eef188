// version rule, message store, middleware.
#include "../support/memory_server.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using mesa::json::object;
using mesa::test::drain;
using mesa::test::memory_server;
using mesa::test::messages_of;
using mesa::test::of_type;

TEST_CASE("version rule: advertised, a matching version passes, a different one closes with 1002") {
    using server_type = memory_server<mesa::version_rule>;
    asio::io_context ioc;
    server_type::options o;
    o.feature<mesa::version_rule>().version = "1.5.8";
    server_type s{ioc, o};
    int app_messages = 0;
    s.on_message([&](auto const&, mesa::message const&) { ++app_messages; });
    s.start();
    auto same = s.transport().connect("/");
    auto other = s.transport().connect("/");
    drain(ioc);
    CHECK(messages_of(*same).at(0).d.at("rules") == mesa::json::array{"enforce_equal_versions"});
    same->send_text(mesa::test::frame("CLIENT_VERSION", object{{"v", "1.5.8"}}));
    other->send_text(mesa::test::frame("CLIENT_VERSION", object{{"v", "1.4.0"}}));
    drain(ioc);
    CHECK(same->open());
    CHECK(other->close_code() == 1002);
    CHECK(app_messages == 0);
    CHECK(mesa::version_string == std::string("0.1.0"));
}

TEST_CASE("message store keeps sent and received messages, bounded") {
    using server_type = memory_server<mesa::message_store>;
    asio::io_context ioc;
    server_type::options o;
    o.feature<mesa::message_store>().max_per_direction = 2;
    server_type s{ioc, o};
    s.on_message([](auto const& c, mesa::message const& m) { c->send(mesa::message("ECHO", m.d)); });
    s.start();
    auto peer = s.transport().connect("/");
    drain(ioc);
    CHECK(messages_of(*peer).at(0).d.at("rules") == mesa::json::array{"store_messages"});
    for (int i = 1; i <= 3; ++i) peer->send_text(mesa::test::frame("M", object{{"i", i}}));
    drain(ioc);
    auto const& log = s.clients().at(0)->state<mesa::message_store>();
    REQUIRE(log.received.size() == 2);
    CHECK(log.received.front().d.at("i") == 2);
    REQUIRE(log.sent.size() == 2);
    CHECK(log.sent.back() == mesa::message("ECHO", object{{"i", 3}}));
}

TEST_CASE("message store log: oldest first through drops and reclaimed slots") {
    mesa::message_store::message_log log;
    CHECK(log.empty());
    CHECK(log.begin() == log.end());
    auto numbered = [](int i) { return mesa::message("M", object{{"i", i}}); };
    int next = 0;
    for (int round = 0; round < 50; ++round) {  // many reclaims at various sizes
        for (int k = 0; k < round % 7 + 1; ++k) log.push_back(numbered(next++));
        for (int k = 0; k < round % 5 && log.size() > 1; ++k) log.pop_front();
        int expected = next - static_cast<int>(log.size());
        REQUIRE(log.front().d.at("i") == expected);
        REQUIRE(log.back().d.at("i") == next - 1);
        for (std::size_t i = 0; i < log.size(); ++i) REQUIRE(log[i].d.at("i") == expected + static_cast<int>(i));
        for (auto const& m : log) REQUIRE(m.d.at("i") == expected++);
        REQUIRE(expected == next);
    }
}

TEST_CASE("middleware sees the reference's events, keeps state, and a throwing one is reported") {
    using server_type = memory_server<mesa::authentication, mesa::sync, mesa::middleware>;
    asio::io_context ioc;
    server_type s{ioc};
    s.feature<mesa::authentication>().on_authenticate(
        [](auto const&, object const& credentials, mesa::authentication::done done) {
            done.succeed(std::string(credentials.at("id").as_string()));
        });
    std::vector<std::string> events;
    std::vector<std::string> errors;
    s.on_error([&](auto const& e) { errors.push_back(e.what); });
    s.feature<mesa::middleware>().use([&](server_type& server) {
        mesa::middleware::handlers<server_type> h;
        auto counter = std::make_shared<int>(0);  // a middleware's own state
        h.on_connection = [&events, counter](auto const&) {
            events.push_back("connection " + std::to_string(++*counter));
        };
        h.on_authenticated = [&events](auto const& c) { events.push_back("authenticated " + c->id()); };
        h.on_message_received = [&events](mesa::message const& m, auto const&) {
            events.push_back("received " + *m.t);
        };
        h.on_message_sent = [&events](mesa::message const& m, auto const& clients, bool from_here) {
            events.push_back("sent " + *m.t + " to " + std::to_string(clients.size()) + (from_here ? " here" : ""));
        };
        h.on_undeliverable_message_sent = [&events](mesa::message const&, std::vector<std::string> const& ids) {
            events.push_back("undeliverable to " + ids.at(0));
        };
        h.on_redeliver_undeliverable_messages = [&events](std::vector<mesa::message> const& m, auto const&) {
            events.push_back("redeliver " + std::to_string(m.size()));
        };
        h.on_disconnection = [&events](auto const&, std::uint16_t code, std::string const&) {
            events.push_back("disconnection " + std::to_string(code));
        };
        h.on_error = [&events](std::string const&, auto const&) { events.push_back("error"); };
        CHECK(server.keys().middleware("rl", "limit") == "rl_mw-limit");
        return h;
    });
    s.feature<mesa::middleware>().use([](server_type&) {
        mesa::middleware::handlers<server_type> h;
        h.on_message_received = [](mesa::message const& m, auto const&) {
            if (*m.t == "BOOM") throw std::runtime_error("middleware failed");
        };
        return h;
    });
    s.start();
    s.send(mesa::message("LATER", {}), {"ann"});
    drain(ioc);
    auto ann = s.transport().connect("/");
    drain(ioc);
    ann->send_text(mesa::serialize(mesa::message(mesa::opcode::authenticate, object{{"id", "ann"}})));
    drain(ioc);
    ann->send_text(mesa::test::frame("HELLO"));
    drain(ioc);
    s.send(mesa::message("NEWS", {}));
    drain(ioc);
    ann->send_text(mesa::test::frame("BOOM"));
    drain(ioc);
    ann->close(1000);
    drain(ioc);

    std::vector<std::string> expected{"undeliverable to ann", "connection 1",   "authenticated ann",
                                      "redeliver 1",          "received HELLO", "sent NEWS to 1 here",
                                      "received BOOM",        "error",          "disconnection 1000"};
    CHECK(events == expected);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("middleware failed") != std::string::npos);
    CHECK(ann->received().size() == 4);  // hello, op 22, LATER (s=1), NEWS
}

TEST_CASE("on_message_sent lists only the clients the message was written to") {
    using server_type = memory_server<mesa::middleware>;
    asio::io_context ioc;
    server_type s{ioc};
    std::size_t listed = 0;
    s.feature<mesa::middleware>().use([&](server_type&) {
        mesa::middleware::handlers<server_type> h;
        h.on_message_sent = [&](mesa::message const&, auto const& clients, bool) { listed = clients.size(); };
        return h;
    });
    s.start();
    auto leaving = s.transport().connect("/");
    auto staying = s.transport().connect("/");
    drain(ioc);
    for (auto const& c : s.clients())
        if (c->connection() == leaving) c->disconnect();
    s.send(mesa::message("NEWS", {}));
    drain(ioc);
    CHECK(listed == 1);
    CHECK(of_type(*staying, "NEWS").size() == 1);
    CHECK(of_type(*leaving, "NEWS").empty());
}
