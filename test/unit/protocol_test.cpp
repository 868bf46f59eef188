// The protocol core: message parsing, serialization, envelopes, key names.
#include <mesa/envelope.hpp>
#include <mesa/keys.hpp>
#include <mesa/message.hpp>
#include <mesa/parse.hpp>
#include <mesa/portal_event.hpp>

#include <doctest/doctest.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>

using mesa::json::object;

TEST_CASE("a valid client frame parses into op, d and t") {
    auto r = mesa::parse(R"({"op":0,"d":{"text":"hi","n":[1,2]},"t":"NEW_MESSAGE"})");
    REQUIRE(r);
    CHECK(r.value().op == 0);
    CHECK(r.value().t == std::string("NEW_MESSAGE"));
    CHECK(r.value().d.at("text") == "hi");
    CHECK_FALSE(r.value().s);
}

TEST_CASE("a missing d is an empty object") {
    auto r = mesa::parse(R"({"op":11})");
    REQUIRE(r);
    CHECK(r.value().d.empty());
}

TEST_CASE("bad frames are refused with 1007 and a reason, never an exception") {
    struct bad {
        char const* text;
        char const* reason_has;
    };
    bad const cases[] = {
        {"not json", "invalid JSON"},
        {"", "invalid JSON"},
        {"[1,2]", "not a JSON object"},
        {"42", "not a JSON object"},
        {R"({"d":{}})", "missing \"op\""},
        {R"({"op":"0"})", "\"op\""},
        {R"({"op":1.5})", "\"op\""},
        {R"({"op":-1})", "\"op\""},
        {R"({"op":0,"d":5})", "\"d\" must be an object"},
        {R"({"op":0,"d":[]})", "\"d\" must be an object"},
        {R"({"op":0,"t":7})", "\"t\" must be a string"},
        {R"({"op":0,"s":0})", "\"s\""},
        {R"({"op":0,"o":true})", "\"o\" must be an object"},
        {R"({"op":0,"o":{"sync":"no"}})", "\"o.sync\""},
        {R"({"op":0,"t":"CHAT","d":{"n":1e999}})", "out of range"},
        {R"({"op":0,"d":{"a":[1,{"b":-1e400}]}})", "out of range"},
    };
    for (auto const& c : cases) {
        CAPTURE(c.text);
        auto r = mesa::parse(c.text);
        REQUIRE_FALSE(r);
        CHECK(r.error().close_code == 1007);
        CHECK(r.error().reason.find(c.reason_has) != std::string::npos);
    }
}

TEST_CASE("every double is read exactly, as JSON.parse reads it, and written back to the same value") {
    // Boost 1.81's parser was 1 ulp off for about a quarter of them
    // (0.20299482355033738 came back as 0.20299482355033735).
    std::mt19937_64 random(20261201);
    int wrong = 0;
    for (int i = 0; i < 20000; ++i) {
        std::uint64_t bits = random();
        double d = 0;
        std::memcpy(&d, &bits, sizeof d);
        if (!std::isfinite(d)) continue;
        char text[64];
        auto const end = std::to_chars(text, text + sizeof text, d).ptr;  // shortest round trip
        std::string frame = R"({"op":0,"d":{"x":)" + std::string(text, end) + "}}";
        auto r = mesa::parse(frame);
        REQUIRE(r);
        auto const& x = r.value().d.at("x");
        double const back = x.is_double() ? x.get_double() : x.to_number<double>();
        if (back != d) ++wrong;
        auto again = mesa::parse(mesa::serialize(r.value()));
        REQUIRE(again);
        if (again.value().d.at("x") != x) ++wrong;
    }
    CHECK(wrong == 0);
    auto r =
        mesa::parse(R"({"op":0,"d":{"a":0.20299482355033738,"b":2.783238295364771e-277,"c":5.86900117614726e+250}})");
    REQUIRE(r);
    CHECK(r.value().d.at("a").get_double() == 0.20299482355033738);
    CHECK(r.value().d.at("b").get_double() == 2.783238295364771e-277);
    CHECK(r.value().d.at("c").get_double() == 5.86900117614726e+250);
}

TEST_CASE("hostile nesting is refused before it can exhaust the stack") {
    std::string deep(100000, '[');
    auto r = mesa::parse(R"({"op":0,"d":{"x":)" + deep);
    REQUIRE_FALSE(r);
    CHECK(r.error().close_code == 1007);

    std::string ok = R"({"op":0,"d":{"x":)" + std::string(60, '[') + std::string(60, ']') + "}}";
    CHECK(mesa::parse(ok));
}

TEST_CASE("serialization writes s when present and o only between services") {
    mesa::message m("EVENT", object{{"a", 1}});
    m.s = 3;
    m.sync = false;
    auto client_text = mesa::serialize(m);
    CHECK(client_text == R"({"op":0,"d":{"a":1},"t":"EVENT","s":3})");
    auto service_text = mesa::serialize(m, mesa::audience::service);
    CHECK(service_text == R"({"op":0,"d":{"a":1},"t":"EVENT","s":3,"o":{"sync":false}})");
    auto back = mesa::parse(service_text);
    REQUIRE(back);
    CHECK(back.value() == m);
}

TEST_CASE("the message, envelope and portal writers give the text of their JSON object forms") {
    // Written straight to text; each must equal Boost.JSON's serialization
    // of the object the reference builds, escapes and number forms included.
    std::string big(70000, 'x');
    object nested{{"q\"uote", "back\\slash"},
                  {"ctl", "\x01\n\t"},
                  {"utf8", "\xc3\xa9\xe2\x82\xac"},
                  {"n", -9223372036854775807LL},
                  {"u", 18446744073709551615ULL},
                  {"f", 0.1},
                  {"a", mesa::json::array{1, nullptr, true, object{{"k", big}}}}};
    mesa::message m("T\"\n\xc3\xa9", nested);
    m.s = 9007199254740993;
    for (auto sync : {std::optional<bool>{}, std::optional<bool>{true}, std::optional<bool>{false}}) {
        m.sync = sync;
        for (auto to : {mesa::audience::client, mesa::audience::service})
            CHECK(mesa::serialize(m, to) == mesa::json::serialize(mesa::to_json(m, to)));
    }
    mesa::message bare(mesa::opcode::heartbeat, object{});
    CHECK(mesa::serialize(bare) == R"({"op":1,"d":{}})");
    // A frame holds its bytes only: queues of small frames stay within the
    // byte bound that counts them (max_backlog_bytes).
    for (auto const& text :
         {mesa::serialize(mesa::message("CHAT", object{{"text", "hello, world"}})), mesa::serialize(m)}) {
        CHECK(text.size() > 16);
        CHECK(text.capacity() - text.size() < 16);
    }

    mesa::envelope e{m, {"a\"b", "c"}, {"x"}, "origin\n", 42};
    object expected{{"message", mesa::to_json(m, mesa::audience::service)},
                    {"recipients", mesa::json::array{"a\"b", "c"}},
                    {"excluding", mesa::json::array{"x"}},
                    {"origin", "origin\n"},
                    {"seq", "42"}};
    CHECK(mesa::serialize(e) == mesa::json::serialize(expected));
    mesa::envelope plain{bare, {}, {}, {}};
    CHECK(mesa::serialize(plain) == R"({"message":{"op":1,"d":{}},"recipients":[]})");

    mesa::portal_event p{"message", std::string("client\"1"), m, "portal\t2"};
    object expected_event{{"type", "message"},
                          {"clientId", "client\"1"},
                          {"message", mesa::to_json(m, mesa::audience::client)},
                          {"portalId", "portal\t2"}};
    CHECK(mesa::serialize(p) == mesa::json::serialize(expected_event));
    CHECK(mesa::serialize(mesa::portal_event{"open", {}, {}, "p"}) == R"({"type":"open","portalId":"p"})");
}

TEST_CASE("ws envelopes round-trip and accept the Node dispatcher's form") {
    mesa::envelope e{mesa::message("X", object{{"k", "v"}}), {"a", "b"}, {}, {}};
    mesa::envelope back;
    std::string why;
    REQUIRE(mesa::parse_envelope(mesa::serialize(e), back, why));
    CHECK(back.msg == e.msg);
    CHECK(back.recipients == e.recipients);
    CHECK_FALSE(back.to_everyone());

    // As a Node dispatcher publishes it.
    REQUIRE(mesa::parse_envelope(R"({"message":{"op":0,"d":{},"t":"T"},"recipients":["*"]})", back, why));
    CHECK(back.to_everyone());

    CHECK_FALSE(mesa::parse_envelope(R"({"message":{"op":0},"recipients":[1]})", back, why));
    CHECK(why.find("recipients") != std::string::npos);
    CHECK_FALSE(mesa::parse_envelope(R"({"recipients":["*"]})", back, why));
    CHECK_FALSE(mesa::parse_envelope("nope", back, why));
}

TEST_CASE("key names take the namespace suffix") {
    CHECK(mesa::keys().ws() == "ws");
    CHECK(mesa::keys().undelivered_messages() == "undelivered_messages");
    mesa::keys chat("chat");
    CHECK(chat.ws() == "ws_chat");
    CHECK(chat.connected_clients() == "connected_clients_chat");
    CHECK(chat.connected_clients_count() == "connected_clients_count_chat");
    CHECK(chat.available_portals_pool() == "available_portals_pool_chat");
    CHECK(chat.middleware("rate", "limit") == "rate_mw-limit_chat");
}
