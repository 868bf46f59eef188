// mesa::broker::redis against a real redis-server, with the memory broker's
// expectations, plus its helpers (uri, backoff, backlog format) alone.
#include <mesa/broker/redis.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include <mesa/broker/requirements.hpp>
#include <mesa/dispatcher.hpp>

#include "../support/drive.hpp"
#include "../support/log_lines.hpp"
#include "../support/redis_fixture.hpp"
#include "../support/send_answers.hpp"

using mesa::broker::redis_errc;
using mesa::test::joined;
using mesa::test::logged;
using mesa::test::redis_server;
using mesa::test::run_until;
namespace json = boost::json;
using namespace std::chrono_literals;

static_assert(mesa::broker::check<mesa::broker::redis>());

namespace {

/// Options for a test broker: short backoff, logs collected.
mesa::broker::redis::options test_options(std::string uri, std::vector<std::string>* log = nullptr) {
    mesa::broker::redis::options o;
    o.uri = std::move(uri);
    o.reconnect_initial = 20ms;
    o.reconnect_max = 200ms;
    if (log) o.on_log = [log](std::string text) { log->push_back(std::move(text)); };
    return o;
}

/// Runs one operation taking a (error_code[, value]) handler to completion.
template <class Value>
struct outcome {
    bool done = false;
    std::error_code ec;
    Value value{};
};

/// Runs `start(handler)` for a broker operation answering a count: its value,
/// required to succeed.
template <class Start>
std::int64_t counted(asio::io_context& ioc, Start& start) {
    outcome<std::int64_t> r;
    start([&](std::error_code ec, std::int64_t v) { r = {true, ec, v}; });
    REQUIRE(run_until(ioc, [&] { return r.done; }));
    REQUIRE_FALSE(r.ec);
    return r.value;
}

}  // namespace

// ---- helpers alone ---------------------------------------------------------

TEST_CASE("redis uri: host, port, credentials, db, unix sockets") {
    using mesa::broker::detail::parse_redis_uri;
    auto d = parse_redis_uri("redis://127.0.0.1:6379");
    CHECK(d.host == "127.0.0.1");
    CHECK(d.port == 6379);
    CHECK(d.db == 0);
    CHECK(d.password.empty());
    CHECK_FALSE(d.is_unix());

    auto p = parse_redis_uri("redis://:s3cret@redis.local:7000/2");
    CHECK(p.host == "redis.local");
    CHECK(p.port == 7000);
    CHECK(p.user.empty());
    CHECK(p.password == "s3cret");
    CHECK(p.db == 2);

    auto u = parse_redis_uri("redis://alice:p%40ss@h/");
    CHECK(u.user == "alice");
    CHECK(u.password == "p@ss");
    CHECK(u.port == 6379);
    CHECK(u.db == 0);

    CHECK(parse_redis_uri("redis://pw@h:1").password == "pw");
    CHECK(parse_redis_uri("redis://:a@b@h:1").password == "a@b");
    auto v6 = parse_redis_uri("redis://[::1]:6380/1");
    CHECK(v6.host == "::1");
    CHECK(v6.port == 6380);
    CHECK(v6.describe() == "[::1]:6380/1");

    auto s = parse_redis_uri("/run/redis.sock");
    CHECK(s.is_unix());
    CHECK(s.unix_path == "/run/redis.sock");
    auto su = parse_redis_uri("unix:///run/redis/redis.sock?db=3&password=x");
    CHECK(su.unix_path == "/run/redis/redis.sock");
    CHECK(su.db == 3);
    CHECK(su.password == "x");
    CHECK(su.describe() == "unix:/run/redis/redis.sock");

    auto throws_naming = [](char const* uri, char const* problem) {
        try {
            parse_redis_uri(uri);
            FAIL("no exception for " << uri);
        } catch (std::invalid_argument const& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find(problem) != std::string::npos);
        }
    };
    throws_naming("", "empty");
    throws_naming("http://h:1", "expected redis://");
    throws_naming("redis://h:99999", "port");
    throws_naming("redis://h:0", "port");
    throws_naming("redis://h:x", "port");
    throws_naming("redis://h:", "empty port");
    throws_naming("redis://:6379", "no host");
    throws_naming("redis://h:1/db", "db");
    throws_naming("redis://h:1/-1", "db");
    throws_naming("redis://u:@h", "password");
    throws_naming("redis://[::1:1", "'['");
    throws_naming("unix://relative.sock", "absolute");
    throws_naming("unix:///s.sock?color=red", "color");
    throws_naming("redis://:%zz@h", "percent");

    asio::io_context ioc;
    mesa::broker::redis::options bad;
    bad.uri = "redis://h:port";
    CHECK_THROWS_AS(mesa::broker::redis(ioc.get_executor(), bad), std::invalid_argument);
}

TEST_CASE("resp reader: an array announcing more elements than any reply holds is a protocol error") {
    // hiredis allocates an array's element pointers at its header: half a
    // billion announced elements took 4 GiB before any arrived.
    using mesa::broker::detail::redis_reader;
    mesa::broker::detail::redis_reply_ptr reply;
    redis_reader huge;
    std::string const header = "*541107932\r\n";
    REQUIRE(huge.feed(header.data(), header.size()));
    CHECK(huge.next(reply) == redis_reader::result::error);
    CHECK(huge.error().find("more than 4194304 elements") != std::string::npos);

    redis_reader fine;  // at the bound and below: parsed as usual
    std::string const small = "*2\r\n:1\r\n$1\r\nx\r\n*4194304\r\n";
    REQUIRE(fine.feed(small.data(), small.size()));
    REQUIRE(fine.next(reply) == redis_reader::result::reply);
    CHECK(reply->elements == 2);
    CHECK(fine.next(reply) == redis_reader::result::none);  // waits for the elements
}

TEST_CASE("redis backoff doubles up to its bound and resets") {
    mesa::broker::detail::redis_backoff b{100ms, 1000ms};
    CHECK(b.next() == 100ms);
    CHECK(b.next() == 200ms);
    CHECK(b.next() == 400ms);
    CHECK(b.next() == 800ms);
    CHECK(b.next() == 1000ms);
    CHECK(b.next() == 1000ms);
    b.reset();
    CHECK(b.next() == 100ms);
}

TEST_CASE("a stored backlog splits into its elements; {} is cjson's empty array") {
    using mesa::broker::detail::split_backlog;
    std::vector<std::string> out;
    CHECK_FALSE(split_backlog(R"([{"op":0,"d":{},"t":"A"},{"op":0,"d":{"x":[1,2]}}])", out));
    CHECK(out == std::vector<std::string>{R"({"op":0,"d":{},"t":"A"})", R"({"op":0,"d":{"x":[1,2]}})"});
    out.clear();
    CHECK_FALSE(split_backlog("{}", out));
    CHECK(out.empty());
    CHECK_FALSE(split_backlog("[]", out));
    CHECK(out.empty());
    // Element texts come back byte for byte (no re-serialization), whitespace around them trimmed.
    CHECK_FALSE(
        split_backlog(R"( [ {"b":1,"a":[]} , {"s":"a,b]\"[{","n":1.0E+2,"u":"\u00e9"},12345678901234567 ] )", out));
    CHECK(out == std::vector<std::string>{R"({"b":1,"a":[]})", R"({"s":"a,b]\"[{","n":1.0E+2,"u":"\u00e9"})",
                                          "12345678901234567"});
    out.clear();
    CHECK(split_backlog("not json", out) == redis_errc::bad_backlog);
    CHECK(split_backlog(R"({"a":1})", out) == redis_errc::bad_backlog);
    CHECK(split_backlog("42", out) == redis_errc::bad_backlog);
}

TEST_CASE("redis error codes are named") {
    std::error_code ec = redis_errc::disconnected;
    CHECK(ec.category().name() == std::string("mesa.redis"));
    CHECK(ec.message() == "not connected to redis");
    CHECK(std::error_code(redis_errc::queue_full).message().find("pending") != std::string::npos);
}

// ---- against redis-server --------------------------------------------------

TEST_CASE("publications cross brokers, in order, never inline") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis a{ioc.get_executor(), test_options(server.uri())};
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    std::vector<std::string> got_a, got_b;
    int confirmed = 0;
    a.subscribe(
        "ws", [&](std::string_view p) { got_a.emplace_back(p); },
        [&](std::error_code ec) {
            CHECK_FALSE(ec);
            ++confirmed;
        });
    b.subscribe(
        "ws", [&](std::string_view p) { got_b.emplace_back(p); },
        [&](std::error_code ec) {
            CHECK_FALSE(ec);
            ++confirmed;
        });
    b.subscribe("other", [&](std::string_view) { FAIL("wrong channel"); });
    CHECK(confirmed == 0);
    REQUIRE(run_until(ioc, [&] { return confirmed == 2 && a.connected() && b.connected(); }));
    a.publish("ws", "1");
    a.publish("ws", "2");
    b.publish("ws", "3");
    CHECK(got_a.empty());
    REQUIRE(run_until(ioc, [&] { return got_a.size() == 3 && got_b.size() == 3; }));
    // Per publisher order holds; across publishers Redis decides.
    auto position = [](std::vector<std::string> const& v, char const* s) {
        return std::find(v.begin(), v.end(), s) - v.begin();
    };
    CHECK(position(got_a, "1") < position(got_a, "2"));
    CHECK(position(got_b, "1") < position(got_b, "2"));
    CHECK(std::count(got_b.begin(), got_b.end(), "3") == 1);

    // A second handler on a channel already confirmed is confirmed at once.
    std::vector<std::string> got_a2;
    bool again = false;
    a.subscribe(
        "ws", [&](std::string_view p) { got_a2.emplace_back(p); },
        [&](std::error_code ec) {
            CHECK_FALSE(ec);
            again = true;
        });
    CHECK_FALSE(again);
    REQUIRE(run_until(ioc, [&] { return again; }));
    b.publish("ws", "4");
    REQUIRE(run_until(ioc, [&] { return got_a2.size() == 1 && got_a.size() == 4; }));
    CHECK(got_a2[0] == "4");
}

TEST_CASE("publications on two threads' brokers") {
    redis_server server;
    asio::io_context ioc_a, ioc_b;
    mesa::broker::redis a{ioc_a.get_executor(), test_options(server.uri())};
    std::atomic<int> received{0};
    bool subscribed = false;
    a.subscribe(
        "ws_chat",
        [&](std::string_view p) {
            if (p == "from b") ++received;
        },
        [&](std::error_code ec) { subscribed = !ec; });
    REQUIRE(run_until(ioc_a, [&] { return subscribed; }));
    std::thread other([&] {
        mesa::broker::redis b{ioc_b.get_executor(), test_options(server.uri())};
        bool sent = false;
        b.set_add("x", "y", [&](std::error_code) { sent = true; });  // waits for the connection
        run_until(ioc_b, [&] { return sent; });
        b.publish("ws_chat", "from b");
        b.counter_add("flush", 1, [&](std::error_code) { sent = false; });
        run_until(ioc_b, [&] { return !sent; });
    });
    bool const ok = run_until(
        ioc_a, [&] { return received.load() == 1; }, 10s);
    other.join();
    CHECK(ok);
}

TEST_CASE("sets and counters behave as the memory broker's, under verbatim names") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis a{ioc.get_executor(), test_options(server.uri())};
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    int acks = 0;
    auto ack = [&](std::error_code ec) {
        CHECK_FALSE(ec);
        ++acks;
    };
    a.set_add("connected_clients_chat", "alice", ack);
    b.set_add("connected_clients_chat", "bob", ack);
    b.set_add("connected_clients_chat", "carol");  // no handler: fire and forget
    REQUIRE(run_until(ioc, [&] { return acks == 2; }));
    b.set_remove("connected_clients_chat", "bob", ack);
    b.set_remove("connected_clients_chat", "nobody", ack);
    a.counter_add("connected_clients_count_chat", 3, ack);
    b.counter_add("connected_clients_count_chat", -1, ack);
    REQUIRE(run_until(ioc, [&] { return acks == 6; }));

    outcome<std::vector<bool>> found, none;
    outcome<std::vector<std::string>> members, empty_set;
    outcome<std::int64_t> count, missing;
    b.set_contains("connected_clients_chat", {"alice", "bob", "carol"}, [&](std::error_code ec, std::vector<bool> f) {
        found = {true, ec, f};
    });
    b.set_contains("connected_clients_chat", {}, [&](std::error_code ec, std::vector<bool> f) {
        none = {true, ec, f};
    });
    a.set_members("connected_clients_chat", [&](std::error_code ec, std::vector<std::string> m) {
        members = {true, ec, m};
    });
    a.set_members("nothing_here", [&](std::error_code ec, std::vector<std::string> m) { empty_set = {true, ec, m}; });
    a.counter_get("connected_clients_count_chat", [&](std::error_code ec, std::int64_t n) { count = {true, ec, n}; });
    a.counter_get("never_counted", [&](std::error_code ec, std::int64_t n) { missing = {true, ec, n}; });
    CHECK_FALSE(none.done);  // never inline, even with nothing to ask
    REQUIRE(run_until(
        ioc, [&] { return found.done && none.done && members.done && empty_set.done && count.done && missing.done; }));
    CHECK_FALSE(found.ec);
    CHECK(found.value == std::vector<bool>{true, false, true});
    CHECK(none.value.empty());
    CHECK(members.value == std::vector<std::string>{"alice", "carol"});
    CHECK(empty_set.value.empty());
    CHECK(count.value == 2);
    CHECK_FALSE(missing.ec);
    CHECK(missing.value == 0);

    // The names are the ones given, stored verbatim, of the kinds Node expects.
    CHECK(server.cli({"TYPE", "connected_clients_chat"}) == "set");
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "2");
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "carol"}) == "1");
    CHECK(server.cli({"EXISTS", "connected_clients"}) == "0");

    // A wrong type is a server error, reported with Redis' text.
    std::vector<std::string> log;
    mesa::broker::redis c{ioc.get_executor(), test_options(server.uri(), &log)};
    outcome<std::int64_t> wrong;
    c.counter_get("connected_clients_chat", [&](std::error_code ec, std::int64_t n) { wrong = {true, ec, n}; });
    c.set_add("connected_clients_count_chat", "x");
    REQUIRE(run_until(ioc, [&] { return wrong.done && logged(log, "SADD failed"); }));
    CHECK(wrong.ec == redis_errc::server_error);
    CHECK(logged(log, "WRONGTYPE"));
}

TEST_CASE(
    "backlogs append in order, drop the oldest past the bound, are taken whole, stored as Node's "
    "JSON array") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    auto message = [](int i) { return R"({"op":0,"d":{"i":)" + std::to_string(i) + R"(},"t":"N"})"; };
    std::int64_t dropped = -1;
    for (int i = 1; i <= 5; ++i) b.backlog_append("undelivered_messages_chat", "u", message(i), 3);
    b.backlog_append("undelivered_messages_chat", "u", message(6), 3, [&](std::error_code ec, std::int64_t d) {
        CHECK_FALSE(ec);
        dropped = d;
    });
    REQUIRE(run_until(ioc, [&] { return dropped >= 0; }));
    CHECK(dropped == 1);  // only the last append's own drop: 6 entries, bound 3, earlier ones dropped before

    // What Node's server reads with HGET: an array of message objects.
    auto const stored = json::parse(server.cli({"HGET", "undelivered_messages_chat", "u"}));
    REQUIRE(stored.is_array());
    REQUIRE(stored.as_array().size() == 3);
    for (auto const& e : stored.as_array()) {
        REQUIRE(e.is_object());
        CHECK(e.as_object().at("t") == "N");
    }

    outcome<std::vector<std::string>> first, second;
    b.backlog_take("undelivered_messages_chat", "u", [&](std::error_code ec, std::vector<std::string> m) {
        first = {true, ec, m};
    });
    b.backlog_take("undelivered_messages_chat", "u", [&](std::error_code ec, std::vector<std::string> m) {
        second = {true, ec, m};
    });
    REQUIRE(run_until(ioc, [&] { return first.done && second.done; }));
    CHECK_FALSE(first.ec);
    CHECK_FALSE(second.ec);
    REQUIRE(first.value.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(first.value[i] == message(i + 4));  // byte for byte
    CHECK(second.value.empty());
    CHECK(server.cli({"HEXISTS", "undelivered_messages_chat", "u"}) == "0");

    // Unbounded (0) keeps everything.
    outcome<std::int64_t> unbounded;
    for (int i = 0; i < 10; ++i)
        b.backlog_append("undelivered_messages", "v", message(i), 0, [&](std::error_code ec, std::int64_t d) {
            unbounded = {true, ec, d};
        });
    REQUIRE(run_until(ioc, [&] { return unbounded.done; }));
    CHECK(unbounded.value == 0);
    CHECK(json::parse(server.cli({"HGET", "undelivered_messages", "v"})).as_array().size() == 10);

    // Invalid message text is refused by the script, nothing is stored.
    outcome<std::int64_t> refused;
    b.backlog_append("undelivered_messages", "w", "not json", 0, [&](std::error_code ec, std::int64_t d) {
        refused = {true, ec, d};
    });
    REQUIRE(run_until(ioc, [&] { return refused.done; }));
    CHECK(refused.ec == redis_errc::server_error);
    CHECK(server.cli({"HEXISTS", "undelivered_messages", "w"}) == "0");
}

TEST_CASE("backlogs written by a Node server are appended to and taken") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    // JSON.stringify of Node's array, and an empty one.
    server.cli({"HSET", "undelivered_messages", "n", R"([{"op":0,"d":{"from":"node"},"t":"A"}])"});
    server.cli({"HSET", "undelivered_messages", "e", "[]"});
    server.cli({"HSET", "undelivered_messages", "bad", R"({"op":0})"});
    outcome<std::int64_t> appended, bad_append;
    b.backlog_append("undelivered_messages", "n", R"({"op":0,"d":{"from":"cpp"},"t":"B"})", 0,
                     [&](std::error_code ec, std::int64_t d) {
                         appended = {true, ec, d};
                     });
    b.backlog_append("undelivered_messages", "bad", R"({"op":0,"d":{},"t":"B"})", 0,
                     [&](std::error_code ec, std::int64_t d) {
                         bad_append = {true, ec, d};
                     });
    outcome<std::vector<std::string>> node, empty;
    b.backlog_take("undelivered_messages", "n", [&](std::error_code ec, std::vector<std::string> m) {
        node = {true, ec, m};
    });
    b.backlog_take("undelivered_messages", "e", [&](std::error_code ec, std::vector<std::string> m) {
        empty = {true, ec, m};
    });
    REQUIRE(run_until(ioc, [&] { return appended.done && bad_append.done && node.done && empty.done; }));
    CHECK_FALSE(appended.ec);
    CHECK(bad_append.ec == redis_errc::server_error);  // an object is not a backlog: left untouched
    CHECK(server.cli({"HGET", "undelivered_messages", "bad"}) == R"({"op":0})");
    CHECK_FALSE(node.ec);
    REQUIRE(node.value.size() == 2);
    CHECK(node.value[0] == R"({"op":0,"d":{"from":"node"},"t":"A"})");
    CHECK(node.value[1] == R"({"op":0,"d":{"from":"cpp"},"t":"B"})");
    CHECK_FALSE(empty.ec);
    CHECK(empty.value.empty());
}

TEST_CASE("backlog messages keep their exact bytes: empty arrays, big numbers, escapes") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    // cjson would turn "a":[] into {}, 12345678901234567 into 1.2345678901235e+16, and reorder keys.
    std::string const exact =
        R"({"op":0,"d":{"a":[],"big":12345678901234567,"f":0.1,"u":"\u00e9\"x"},"t":"E","o":{"z":1,"a":2}})";
    std::string const second = R"({"t":"F","d":{"n":-0.5E+3,"l":[true,false,null]},"op":0})";
    outcome<std::int64_t> appended;
    b.backlog_append("undelivered_messages", "x", exact, 0);
    b.backlog_append("undelivered_messages", "x", second, 0, [&](std::error_code ec, std::int64_t d) {
        appended = {true, ec, d};
    });
    REQUIRE(run_until(ioc, [&] { return appended.done; }));
    CHECK_FALSE(appended.ec);
    // What Node reads is still a JSON array of the message objects, spliced verbatim.
    CHECK(server.cli({"HGET", "undelivered_messages", "x"}) == "[" + exact + "," + second + "]");
    CHECK(json::parse(server.cli({"HGET", "undelivered_messages", "x"})).as_array().size() == 2);

    outcome<std::vector<std::string>> taken;
    b.backlog_take("undelivered_messages", "x", [&](std::error_code ec, std::vector<std::string> m) {
        taken = {true, ec, m};
    });
    REQUIRE(run_until(ioc, [&] { return taken.done; }));
    CHECK_FALSE(taken.ec);
    CHECK(taken.value == std::vector<std::string>{exact, second});
    CHECK(server.cli({"HEXISTS", "undelivered_messages", "x"}) == "0");
}

TEST_CASE("backlog trimming cuts the oldest elements off the text, strings with brackets and quotes included") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    // Elements whose strings hold , ] [ { } and escaped quotes and backslashes: a
    // naive split would cut them in the wrong place.
    std::vector<std::string> const messages{
        R"({"op":0,"d":{"s":"a,b]"},"t":"1"})",
        R"({"op":0,"d":{"s":"[{\"x\":\"],[\"}"},"t":"2"})",
        R"({"op":0,"d":{"s":"\\"},"t":"3"})",
        R"({"op":0,"d":{"a":[1,[2,{"b":"}"}]],"e":[],"big":12345678901234567},"t":"4"})",
        R"({"op":0,"d":{"s":"end\\\"],{"},"t":"5"})",
        R"({"op":0,"d":{"s":",,,]]]}}}\"\\"},"t":"6"})",
    };
    std::vector<std::int64_t> dropped;
    for (auto const& m : messages)
        b.backlog_append("undelivered_messages", "t", m, 3, [&](std::error_code ec, std::int64_t d) {
            CHECK_FALSE(ec);
            dropped.push_back(d);
        });
    REQUIRE(run_until(ioc, [&] { return dropped.size() == messages.size(); }));
    CHECK(dropped == std::vector<std::int64_t>{0, 0, 0, 1, 1, 1});
    CHECK(server.cli({"HGET", "undelivered_messages", "t"}) ==
          "[" + messages[3] + "," + messages[4] + "," + messages[5] + "]");

    // A bound of 1 drops several at once from a longer array (here written by Node).
    server.cli({"HSET", "undelivered_messages", "m", "[" + messages[0] + "," + messages[1] + "," + messages[2] + "]"});
    outcome<std::int64_t> one;
    b.backlog_append("undelivered_messages", "m", messages[4], 1, [&](std::error_code ec, std::int64_t d) {
        one = {true, ec, d};
    });
    outcome<std::vector<std::string>> taken, taken_one;
    b.backlog_take("undelivered_messages", "t", [&](std::error_code ec, std::vector<std::string> m) {
        taken = {true, ec, m};
    });
    b.backlog_take("undelivered_messages", "m", [&](std::error_code ec, std::vector<std::string> m) {
        taken_one = {true, ec, m};
    });
    REQUIRE(run_until(ioc, [&] { return one.done && taken.done && taken_one.done; }));
    CHECK_FALSE(one.ec);
    CHECK(one.value == 3);
    CHECK_FALSE(taken.ec);
    CHECK(taken.value == std::vector<std::string>{messages[3], messages[4], messages[5]});
    CHECK_FALSE(taken_one.ec);
    CHECK(taken_one.value == std::vector<std::string>{messages[4]});
}

TEST_CASE("backlog appends extend Node's array, [] and cjson's {} byte-exact") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    std::string const node = R"({"op":0,"d":{},"t":"A"})";
    std::string const ours = R"({"op":0,"d":{"a":[],"n":12345678901234567},"t":"B"})";
    server.cli({"HSET", "undelivered_messages", "node", "[" + node + "]"});
    server.cli({"HSET", "undelivered_messages", "empty", "[]"});
    server.cli({"HSET", "undelivered_messages", "cjson", "{}"});
    int acks = 0;
    for (char const* field : {"node", "empty", "cjson"})
        b.backlog_append("undelivered_messages", field, ours, 0, [&](std::error_code ec, std::int64_t d) {
            CHECK_FALSE(ec);
            CHECK(d == 0);
            ++acks;
        });
    REQUIRE(run_until(ioc, [&] { return acks == 3; }));
    CHECK(server.cli({"HGET", "undelivered_messages", "node"}) == "[" + node + "," + ours + "]");
    CHECK(server.cli({"HGET", "undelivered_messages", "empty"}) == "[" + ours + "]");
    CHECK(server.cli({"HGET", "undelivered_messages", "cjson"}) == "[" + ours + "]");

    outcome<std::vector<std::string>> taken;
    b.backlog_take("undelivered_messages", "node", [&](std::error_code ec, std::vector<std::string> m) {
        taken = {true, ec, m};
    });
    REQUIRE(run_until(ioc, [&] { return taken.done; }));
    CHECK_FALSE(taken.ec);
    CHECK(taken.value == std::vector<std::string>{node, ours});
}

TEST_CASE("backlog appends refuse what cjson tolerates but JSON.parse would not, keeping the backlog readable") {
    redis_server server;
    asio::io_context ioc;
    std::vector<std::string> log;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri(), &log)};
    std::string const valid = R"({"op":0,"d":{},"t":"A"})";
    server.cli({"HSET", "undelivered_messages", "u", "[" + valid + "]"});
    std::vector<std::string> const lenient{
        R"({"d":NaN})",
        R"({"d":-inf})",
        R"({"d":0x1F})",
        R"({"d":01})",
        R"({"d":+1})",
        R"({"d":1.})",
        "{\"d\":\"raw\nnewline\"}",
        std::string("{\"d\":\"\x01\"}"),
        R"({"d":tru})",
        "[1,]",
    };
    int refused = 0;
    for (auto const& text : lenient)
        b.backlog_append("undelivered_messages", "u", text, 0, [&, text](std::error_code ec, std::int64_t) {
            INFO(text);
            CHECK(ec == redis_errc::server_error);
            ++refused;
        });
    REQUIRE(run_until(ioc, [&] { return refused == static_cast<int>(lenient.size()); }));
    CHECK(server.cli({"HGET", "undelivered_messages", "u"}) == "[" + valid + "]");
    CHECK(logged(log, "not JSON"));

    // A stored object other than {} is not a backlog: take leaves it for inspection.
    server.cli({"HSET", "undelivered_messages", "obj", R"({"op":0})"});
    outcome<std::vector<std::string>> taken;
    b.backlog_take("undelivered_messages", "obj", [&](std::error_code ec, std::vector<std::string> m) {
        taken = {true, ec, m};
    });
    REQUIRE(run_until(ioc, [&] { return taken.done; }));
    CHECK(taken.ec == redis_errc::server_error);
    CHECK(server.cli({"HGET", "undelivered_messages", "obj"}) == R"({"op":0})");
}

TEST_CASE("4 brokers x 250 concurrent appends lose nothing and keep each appender's order") {
    redis_server server;
    constexpr int appenders = 4, per_appender = 250;
    std::vector<std::thread> workers;
    std::atomic<int> acked{0}, failed{0};
    for (int t = 0; t < appenders; ++t) {
        workers.emplace_back([&, t] {
            asio::io_context ioc;
            mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
            int done = 0;
            for (int i = 0; i < per_appender; ++i) {
                auto const text =
                    R"({"op":0,"d":{"a":)" + std::to_string(t) + R"(,"i":)" + std::to_string(i) + R"(},"t":"SYNC"})";
                b.backlog_append("undelivered_messages", "u", text, 0, [&](std::error_code ec, std::int64_t) {
                    ++done;
                    if (ec) ++failed;
                });
            }
            run_until(
                ioc, [&] { return done == per_appender; }, 30s);
            acked += done;
        });
    }
    for (auto& w : workers) w.join();
    REQUIRE(acked.load() == appenders * per_appender);
    CHECK(failed.load() == 0);

    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    outcome<std::vector<std::string>> taken;
    b.backlog_take("undelivered_messages", "u", [&](std::error_code ec, std::vector<std::string> m) {
        taken = {true, ec, m};
    });
    REQUIRE(run_until(
        ioc, [&] { return taken.done; }, 10s));
    CHECK_FALSE(taken.ec);
    REQUIRE(taken.value.size() == appenders * per_appender);
    std::vector<int> next(appenders, 0);
    bool in_order = true;
    for (auto const& text : taken.value) {
        auto const d = json::parse(text).at("d");
        auto const a = static_cast<int>(d.at("a").as_int64());
        auto const i = static_cast<int>(d.at("i").as_int64());
        if (i != next[a]) in_order = false;
        next[a] = i + 1;
    }
    CHECK(in_order);
    CHECK(next == std::vector<int>(appenders, per_appender));
}

TEST_CASE("commands past max_pending_commands fail with queue_full") {
    redis_server server;
    asio::io_context ioc;
    std::vector<std::string> log;
    auto o = test_options(server.uri(), &log);
    o.max_pending_commands = 3;
    mesa::broker::redis b{ioc.get_executor(), o};
    std::vector<std::error_code> results;
    // Issued before the connection is up: 3 wait for it, 2 are refused.
    for (int i = 0; i < 5; ++i) b.set_add("s", std::to_string(i), [&](std::error_code ec) { results.push_back(ec); });
    b.publish("ws", "refused too");
    CHECK(results.empty());
    REQUIRE(run_until(ioc, [&] { return results.size() == 5; }));
    CHECK(std::count(results.begin(), results.end(), std::error_code(redis_errc::queue_full)) == 2);
    CHECK(std::count(results.begin(), results.end(), std::error_code()) == 3);
    CHECK(logged(log, "PUBLISH to 'ws' failed"));
    CHECK(server.cli({"SCARD", "s"}) == "3");
}

TEST_CASE("AUTH with --requirepass, and a wrong password is reported") {
    redis_server server({"--requirepass", "s3cret"});
    asio::io_context ioc;
    std::vector<std::string> good_log, bad_log;
    mesa::broker::redis good{ioc.get_executor(), test_options(server.uri().insert(8, ":s3cret@"), &good_log)};
    mesa::broker::redis acl{ioc.get_executor(),
                            test_options("redis://default:s3cret@127.0.0.1:" + std::to_string(server.port()))};
    mesa::broker::redis bad{ioc.get_executor(), test_options(server.uri().insert(8, ":wrong@"), &bad_log)};
    std::optional<std::error_code> good_done, acl_done, bad_done;
    good.set_add("auth", "ok", [&](std::error_code ec) { good_done = ec; });
    acl.set_add("auth", "acl", [&](std::error_code ec) { acl_done = ec; });
    bad.set_add("auth", "no", [&](std::error_code ec) { bad_done = ec; });
    REQUIRE(run_until(ioc, [&] { return good_done && acl_done && bad_done; }));
    CHECK_FALSE(*good_done);
    CHECK_FALSE(*acl_done);
    CHECK(*bad_done == redis_errc::disconnected);
    CHECK(good.connected());
    CHECK_FALSE(bad.connected());
    INFO(joined(bad_log));
    CHECK(logged(bad_log, "WRONGPASS"));
    CHECK(server.cli({"SMEMBERS", "auth"}, {"-a", "s3cret"}).find("no") == std::string::npos);
    CHECK(server.cli({"SCARD", "auth"}, {"-a", "s3cret"}) == "2");
}

TEST_CASE("SELECT isolates databases") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis one{ioc.get_executor(), test_options(server.uri("/1"))};
    mesa::broker::redis two{ioc.get_executor(), test_options(server.uri("/2"))};
    int acks = 0;
    one.set_add("connected_clients", "in-one", [&](std::error_code ec) { acks += !ec; });
    one.counter_add("connected_clients_count", 5, [&](std::error_code ec) { acks += !ec; });
    REQUIRE(run_until(ioc, [&] { return acks == 2; }));
    outcome<std::vector<std::string>> in_two;
    outcome<std::int64_t> count_two;
    two.set_members("connected_clients", [&](std::error_code ec, std::vector<std::string> m) {
        in_two = {true, ec, m};
    });
    two.counter_get("connected_clients_count", [&](std::error_code ec, std::int64_t n) { count_two = {true, ec, n}; });
    REQUIRE(run_until(ioc, [&] { return in_two.done && count_two.done; }));
    CHECK(in_two.value.empty());
    CHECK(count_two.value == 0);
    CHECK(server.cli({"SMEMBERS", "connected_clients"}, {"-n", "1"}) == "in-one");
    CHECK(server.cli({"EXISTS", "connected_clients"}, {"-n", "0"}) == "0");
    CHECK(server.cli({"EXISTS", "connected_clients"}, {"-n", "2"}) == "0");
}

TEST_CASE("a unix socket, given as a path or a unix:// uri with a db") {
    auto const path = "/tmp/mesa-redis-test-" + std::to_string(::getpid()) + ".sock";
    redis_server server({"--unixsocket", path, "--unixsocketperm", "700"});
    asio::io_context ioc;
    mesa::broker::redis by_path{ioc.get_executor(), test_options(path)};
    mesa::broker::redis by_uri{ioc.get_executor(), test_options("unix://" + path + "?db=3")};
    int acks = 0;
    by_path.set_add("where", "path", [&](std::error_code ec) { acks += !ec; });
    by_uri.set_add("where", "uri", [&](std::error_code ec) { acks += !ec; });
    REQUIRE(run_until(ioc, [&] { return acks == 2; }));
    CHECK(server.cli({"SMEMBERS", "where"}, {"-n", "0"}) == "path");
    CHECK(server.cli({"SMEMBERS", "where"}, {"-n", "3"}) == "uri");
}

TEST_CASE("nothing listening: operations fail with disconnected and the log says why") {
    auto const port = mesa::test::free_port();
    asio::io_context ioc;
    std::vector<std::string> log;
    mesa::broker::redis b{ioc.get_executor(), test_options("redis://127.0.0.1:" + std::to_string(port), &log)};
    std::optional<std::error_code> added;
    outcome<std::vector<std::string>> taken;
    bool sub_done = false;
    std::error_code sub_ec;
    b.subscribe(
        "ws", [](std::string_view) {},
        [&](std::error_code ec) {
            sub_done = true;
            sub_ec = ec;
        });
    b.set_add("s", "m", [&](std::error_code ec) { added = ec; });
    b.backlog_take("h", "f", [&](std::error_code ec, std::vector<std::string> m) { taken = {true, ec, m}; });
    REQUIRE(run_until(ioc, [&] { return added && taken.done && sub_done; }));
    CHECK(*added == redis_errc::disconnected);
    CHECK(taken.ec == redis_errc::disconnected);
    CHECK(sub_ec == redis_errc::disconnected);
    CHECK_FALSE(b.connected());
    CHECK(logged(log, "cannot connect"));
    // Later calls, between attempts, fail too (never inline).
    std::optional<std::error_code> later;
    b.counter_add("c", 1, [&](std::error_code ec) { later = ec; });
    CHECK_FALSE(later);
    REQUIRE(run_until(ioc, [&] { return later.has_value(); }));
    CHECK(*later == redis_errc::disconnected);
}

TEST_CASE("reconnection: outage reported, operations fail, subscriptions and commands come back") {
    redis_server server;
    asio::io_context ioc;
    std::vector<std::string> log_a, log_b;
    mesa::broker::redis a{ioc.get_executor(), test_options(server.uri(), &log_a)};
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri(), &log_b)};
    std::vector<std::string> got;
    bool subscribed = false;
    b.subscribe(
        "ws", [&](std::string_view p) { got.emplace_back(p); }, [&](std::error_code ec) { subscribed = !ec; });
    REQUIRE(run_until(ioc, [&] { return subscribed && a.connected() && b.connected(); }));
    a.publish("ws", "before");
    REQUIRE(run_until(ioc, [&] { return got.size() == 1; }));

    server.stop();  // SIGKILL: an outage
    // Both connections must have noticed (one may still be "ready" with its EOF unread).
    REQUIRE(run_until(ioc, [&] {
        return !a.connected() && !b.connected() &&
               logged(log_a, "commands connection to 127.0.0.1:" + std::to_string(server.port()) + ": cannot connect");
    }));
    INFO(joined(log_a));
    CHECK(logged(log_a, "lost"));
    CHECK(logged(log_b, "subscriptions connection"));
    std::optional<std::error_code> added;
    outcome<std::int64_t> count;
    a.set_add("connected_clients", "u", [&](std::error_code ec) { added = ec; });
    a.counter_get("connected_clients_count", [&](std::error_code ec, std::int64_t n) { count = {true, ec, n}; });
    a.publish("ws", "during");
    REQUIRE(run_until(ioc, [&] { return added && count.done && logged(log_a, "PUBLISH to 'ws' failed"); }));
    CHECK(*added == redis_errc::disconnected);
    CHECK(count.ec == redis_errc::disconnected);

    server.start();  // same port
    REQUIRE(run_until(
        ioc, [&] { return a.connected() && b.connected(); }, 10s));
    CHECK(logged(log_a, "restored"));
    CHECK(logged(log_b, "restored"));
    // The subscription is renewed asynchronously: publish until it is heard.
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
        a.publish("ws", "after");
        run_until(
            ioc, [&] { return got.size() >= 2; }, 100ms);
    }
    REQUIRE(got.size() >= 2);
    CHECK(got[1] == "after");
    std::optional<std::error_code> added_again;
    a.set_add("connected_clients", "u", [&](std::error_code ec) { added_again = ec; });
    REQUIRE(run_until(ioc, [&] { return added_again.has_value(); }));
    CHECK_FALSE(*added_again);
    CHECK(server.cli({"SISMEMBER", "connected_clients", "u"}) == "1");
}

TEST_CASE("a Redis that stops answering: commands fail within command_timeout, connected() turns false, it recovers") {
    redis_server server;
    asio::io_context ioc;
    std::vector<std::string> log_a, log_b;
    auto o = test_options(server.uri(), &log_a);
    o.command_timeout = 300ms;
    o.connect_timeout = 300ms;
    mesa::broker::redis a{ioc.get_executor(), o};
    // b only subscribes: its subscription connection's PING notices the pause.
    auto ob = test_options(server.uri(), &log_b);
    ob.command_timeout = 300ms;
    ob.connect_timeout = 300ms;
    mesa::broker::redis b{ioc.get_executor(), ob};
    std::vector<std::string> got;
    bool subscribed = false;
    b.subscribe(
        "ws", [&](std::string_view p) { got.emplace_back(p); }, [&](std::error_code ec) { subscribed = !ec; });
    REQUIRE(run_until(ioc, [&] { return subscribed && a.connected() && b.connected(); }));

    server.signal(SIGSTOP);
    // Up but silent: a failed check must not leave it stopped for the fixture's SIGTERM.
    struct resume {
        redis_server& s;
        ~resume() { s.signal(SIGCONT); }
    } resume_on_exit{server};
    auto const stopped_at = std::chrono::steady_clock::now();
    std::optional<std::error_code> added;
    a.set_add("connected_clients", "u", [&](std::error_code ec) { added = ec; });
    REQUIRE(run_until(
        ioc, [&] { return added.has_value(); }, 3s));
    CHECK(*added == redis_errc::disconnected);
    CHECK(std::chrono::steady_clock::now() - stopped_at < 2s);
    REQUIRE(run_until(
        ioc, [&] { return !a.connected() && !b.connected(); }, 3s));
    INFO(joined(log_a));
    INFO(joined(log_b));
    CHECK(logged(log_a, "commands connection to 127.0.0.1:" + std::to_string(server.port()) +
                            ": lost (no reply within the command timeout (300 ms)), reconnecting"));
    CHECK(logged(log_b, "subscriptions connection to 127.0.0.1:" + std::to_string(server.port()) +
                            ": lost (no answer to PING within the command timeout (300 ms))"));
    // Still paused: later commands fail too (the reconnection cannot complete).
    std::optional<std::error_code> again;
    a.set_add("connected_clients", "v", [&](std::error_code ec) { again = ec; });
    REQUIRE(run_until(
        ioc, [&] { return again.has_value(); }, 3s));
    CHECK(*again == redis_errc::disconnected);

    server.signal(SIGCONT);
    REQUIRE(run_until(
        ioc, [&] { return a.connected() && b.connected(); }, 10s));
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    while (got.empty() && std::chrono::steady_clock::now() < deadline) {
        a.publish("ws", "after");
        run_until(
            ioc, [&] { return !got.empty(); }, 100ms);
    }
    REQUIRE_FALSE(got.empty());
    CHECK(got[0] == "after");
    std::optional<std::error_code> added_again;
    a.set_add("connected_clients", "w", [&](std::error_code ec) { added_again = ec; });
    REQUIRE(run_until(ioc, [&] { return added_again.has_value(); }));
    CHECK_FALSE(*added_again);
}

TEST_CASE("command_timeout leaves a long but legitimate WAIT alone, and the replies of a slow Redis within it") {
    redis_server server;
    asio::io_context ioc;
    std::vector<std::string> log;
    auto o = test_options(server.uri(), &log);
    o.command_timeout = 200ms;
    // WAIT blocks for replica_timeout (no replica here): more than command_timeout.
    o.replicas_to_acknowledge = 1;
    o.replica_timeout = 600ms;
    mesa::broker::redis a{ioc.get_executor(), o};
    REQUIRE(run_until(ioc, [&] { return a.connected(); }));
    outcome<std::int64_t> appended;
    a.backlog_append("h", "f", "{}", 0, [&](std::error_code ec, std::int64_t n) { appended = {true, ec, n}; });
    REQUIRE(run_until(ioc, [&] { return appended.done; }));
    CHECK(appended.ec == redis_errc::not_replicated);  // WAIT answered 0 replicas, not a lost connection
    INFO(joined(log));
    CHECK_FALSE(logged(log, "lost"));
    CHECK(a.connected());
    // Idle longer than command_timeout: nothing to wait for, nothing lost.
    run_until(
        ioc, [] { return false; }, 500ms);
    CHECK_FALSE(logged(log, "lost"));
    CHECK(a.connected());
}

TEST_CASE("destroying a broker with operations in flight calls nothing back") {
    redis_server server;
    asio::io_context ioc;
    bool gone = false;
    int calls_after = 0;
    {
        mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
        bool ready = false;
        b.set_add("s", "first", [&](std::error_code) { ready = true; });
        REQUIRE(run_until(ioc, [&] { return ready; }));
        b.subscribe("ws", [&](std::string_view) { calls_after += gone; });
        for (int i = 0; i < 100; ++i) b.set_add("s", std::to_string(i), [&](std::error_code) { calls_after += gone; });
        b.counter_get("c", [&](std::error_code, std::int64_t) { calls_after += gone; });
        b.set_contains("s", {"a", "b"}, [&](std::error_code, std::vector<bool>) { calls_after += gone; });
        b.publish("ws", "x");
        gone = true;
    }
    {
        // Destroyed before it ever connected.
        mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
        b.set_members("s", [&](std::error_code, std::vector<std::string>) { ++calls_after; });
    }
    ioc.restart();
    ioc.run_for(300ms);
    CHECK(calls_after == 0);
    CHECK(server.cli({"SISMEMBER", "s", "first"}) == "1");
}

TEST_CASE("a broker destroyed by one of its own handlers stops cleanly") {
    redis_server server;
    asio::io_context ioc;
    auto b = std::make_unique<mesa::broker::redis>(ioc.get_executor(), test_options(server.uri()));
    int after = 0;
    bool destroyed = false;
    b->set_add("s", "x", [&](std::error_code) {
        b.reset();
        destroyed = true;
    });
    b->set_add("s", "y", [&](std::error_code) { ++after; });
    REQUIRE(run_until(ioc, [&] { return destroyed; }));
    ioc.restart();
    ioc.run_for(100ms);
    CHECK(after == 0);

    // The same from a subscription handler.
    auto c = std::make_unique<mesa::broker::redis>(ioc.get_executor(), test_options(server.uri()));
    mesa::broker::redis publisher{ioc.get_executor(), test_options(server.uri())};
    int heard = 0;
    bool subscribed = false;
    c->subscribe(
        "ws",
        [&](std::string_view) {
            ++heard;
            c.reset();
        },
        [&](std::error_code ec) { subscribed = !ec; });
    c->subscribe("ws", [&](std::string_view) { ++heard; });
    REQUIRE(run_until(ioc, [&] { return subscribed; }));
    publisher.publish("ws", "1");
    publisher.publish("ws", "2");
    REQUIRE(run_until(ioc, [&] { return !c; }));
    ioc.restart();
    ioc.run_for(100ms);
    CHECK(heard == 1);
}

TEST_CASE("per-user cap and presence query on Redis: admitted and counted in one step across instances") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    mesa::keys const keys{"chat"};
    auto call = [&](auto&& start) { return counted(ioc, start); };
    auto const a = call([&](auto h) { b.presence_register(keys, "A", 60s, 0, {}, h); });
    auto const c = call([&](auto h) { b.presence_register(keys, "C", 60s, 0, {}, h); });
    CHECK(call([&](auto h) { b.presence_admit(keys, "A", a, "u", 2, h); }) == 1);
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u"}) == "1");
    CHECK(call([&](auto h) { b.presence_admit(keys, "C", c, "u", 2, h); }) == 2);
    CHECK(call([&](auto h) { b.presence_admit(keys, "C", c, "u", 2, h); }) == -2);  // the third
    CHECK(server.cli({"HGET", "mesa_presence_chat", "u"}) == "2");
    CHECK(server.cli({"HGET", "mesa_sockets:C_chat", "u"}) == "1");
    // Counted as presence_change counts: a close frees a place.
    CHECK(call([&](auto h) { b.presence_change(keys, "A", a, 0, "u", -1, h); }) == 1);
    CHECK(call([&](auto h) { b.presence_admit(keys, "C", c, "u", 2, h); }) == 2);
    // A fenced instance counts nothing.
    CHECK(call([&](auto h) { b.presence_admit(keys, "A", a + 100, "v", 2, h); }) == -1);
    CHECK(server.cli({"HEXISTS", "mesa_presence_chat", "v"}) == "0");
    // The presence query: sockets per id, -1 for an id only Node's set holds, 0 offline.
    server.cli({"SADD", "connected_clients_chat", "node-user"});
    outcome<std::vector<std::int64_t>> counts;
    b.presence_query(keys, {"u", "node-user", "v"}, [&](std::error_code ec, std::vector<std::int64_t> c) {
        counts = {true, ec, c};
    });
    REQUIRE(run_until(ioc, [&] { return counts.done; }));
    CHECK_FALSE(counts.ec);
    CHECK(counts.value == std::vector<std::int64_t>{2, -1, 0});
    // Withdrawing an instance takes its admitted sockets with it.
    CHECK(call([&](auto h) { b.presence_withdraw(keys, "C", c, h); }) == 1);
    CHECK(server.cli({"HGET", "mesa_presence_chat", "u"}).empty());
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u"}) == "0");
}

TEST_CASE("exact presence on Redis: per-instance counts, 0<->1 moves of Node's set, reaping and fencing") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    mesa::keys const keys{"chat"};
    auto call = [&](auto&& start) { return counted(ioc, start); };
    auto const ttl = 300ms;
    auto const a_epoch = call([&](auto h) { b.presence_register(keys, "A", ttl, 2, {{"u1", 1}, {"u2", 1}}, h); });
    auto const b_epoch = call([&](auto h) { b.presence_register(keys, "B", 60s, 1, {{"u1", 1}}, h); });
    CHECK(b_epoch > a_epoch);
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u2"}) == "1");
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "3");
    CHECK(server.cli({"HGET", "mesa_presence_chat", "u1"}) == "2");
    CHECK(server.cli({"HGET", "mesa_sockets:A_chat", "u2"}) == "1");

    // u1 closes on A: still online through B.
    CHECK(call([&](auto h) { b.presence_change(keys, "A", a_epoch, -1, "u1", -1, h); }) == 1);
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u1"}) == "1");
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "2");
    // A Node server removed u1 on one of its closes; B's renewal heals it.
    server.cli({"SREM", "connected_clients_chat", "u1"});
    CHECK(call([&](auto h) { b.presence_renew(keys, "B", b_epoch, 60s, h); }) == 1);
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u1"}) == "1");

    // A stops renewing: once its liveness expired it is reaped, and only it.
    outcome<std::vector<std::string>> reaped;
    auto const deadline = std::chrono::steady_clock::now() + 5s;
    while (reaped.value.empty() && std::chrono::steady_clock::now() < deadline) {
        reaped = {};
        b.presence_reap(keys, [&](std::error_code ec, std::vector<std::string> r) { reaped = {true, ec, r}; });
        REQUIRE(run_until(ioc, [&] { return reaped.done; }));
        if (reaped.value.empty())
            run_until(
                ioc, [] { return false; }, 50ms);
    }
    CHECK(reaped.value == std::vector<std::string>{"A"});
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u2"}) == "0");
    CHECK(server.cli({"SISMEMBER", "connected_clients_chat", "u1"}) == "1");
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "1");
    CHECK(server.cli({"EXISTS", "mesa_sockets:A_chat"}) == "0");
    // A's late changes are refused by its stale epoch; it registers again.
    CHECK(call([&](auto h) { b.presence_change(keys, "A", a_epoch, -1, "u2", -1, h); }) == -1);
    CHECK(call([&](auto h) { b.presence_renew(keys, "A", a_epoch, ttl, h); }) == -1);
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "1");

    // Registering again replaces an instance's contribution, never adds to it.
    auto const again = call([&](auto h) { b.presence_register(keys, "B", 60s, 1, {{"u1", 1}}, h); });
    CHECK(server.cli({"HGET", "mesa_presence_chat", "u1"}) == "1");
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "1");
    CHECK(call([&](auto h) { b.presence_withdraw(keys, "B", again, h); }) == 1);
    CHECK(server.cli({"SCARD", "connected_clients_chat"}) == "0");
    CHECK(server.cli({"GET", "connected_clients_count_chat"}) == "0");
    CHECK(server.cli({"HLEN", "mesa_instances_chat"}) == "0");
}

TEST_CASE("scripts run by SHA; after SCRIPT FLUSH or a restart they still run") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    auto append = [&](std::string const& text) {
        outcome<std::int64_t> r;
        b.backlog_append("undelivered_messages", "u", text, 0, [&](std::error_code ec, std::int64_t d) {
            r = {true, ec, d};
        });
        REQUIRE(run_until(
            ioc, [&] { return r.done; }, 10s));
        CHECK_FALSE(r.ec);
    };
    append(R"({"op":0,"d":{"n":1}})");
    append(R"({"op":0,"d":{"n":2}})");  // by then the SHA is known
    server.cli({"SCRIPT", "FLUSH"});
    append(R"({"op":0,"d":{"n":3}})");  // NOSCRIPT: sent again as text
    server.stop();
    REQUIRE(run_until(
        ioc, [&] { return !b.connected(); }, 10s));
    server.start();
    REQUIRE(run_until(
        ioc, [&] { return b.connected(); }, 10s));
    append(R"({"op":0,"d":{"n":4}})");  // loaded again on the new connection
    std::string const stored = server.cli({"HGET", "undelivered_messages", "u"});
    CHECK(stored == R"([{"op":0,"d":{"n":4}}])");  // the restart lost 1-3 (no persistence here)
    std::string const info = server.cli({"INFO", "commandstats"});
    CHECK(info.find("cmdstat_evalsha") != std::string::npos);
}

// ---- idempotent sends ----------------------------------------------------------

namespace {

using mesa::test::send_answers;

using redis_dispatcher = mesa::dispatcher<mesa::broker::redis>;

redis_dispatcher::options dispatcher_options(std::string uri, bool sync) {
    redis_dispatcher::options o;
    o.namespace_name = "chat";
    o.sync = sync;
    o.broker = test_options(std::move(uri));
    return o;
}

}  // namespace

TEST_CASE("idempotent dispatch on Redis: two senders racing with one key deliver once") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis listener{ioc.get_executor(), test_options(server.uri())};
    std::vector<std::string> published;
    outcome<int> subscribed;
    listener.subscribe(
        "ws_chat", [&](std::string_view p) { published.emplace_back(p); },
        [&](std::error_code ec) {
            subscribed = {true, ec, 0};
        });
    REQUIRE(run_until(ioc, [&] { return subscribed.done; }));
    // Two dispatchers: two connections, so the two claims race at Redis.
    redis_dispatcher one{ioc.get_executor(), dispatcher_options(server.uri(), true)},
        two{ioc.get_executor(), dispatcher_options(server.uri(), true)};
    auto const m = mesa::message("N", json::object{{"n", 1}});
    using mesa::send_outcome;

    SUBCASE("a publish (to everyone)") {
        send_answers got;
        one.dispatch(m, {"*"}, {}, {"race", "first"}, got.handler());
        two.dispatch(m, {"*"}, {}, {"race", "second"}, got.handler());
        REQUIRE(run_until(ioc, [&] { return got.results.size() == 2; }));
        for (auto const& ec : got.errors) CHECK_FALSE(ec);
        auto const sent = std::count_if(got.results.begin(), got.results.end(),
                                        [](auto const& r) { return r.outcome == send_outcome::sent; });
        CHECK(sent == 1);
        for (auto const& r : got.results)
            if (r.outcome == send_outcome::replayed) CHECK(r.result == "first");  // or in_flight: no result
        run_until(
            ioc, [] { return false; }, 100ms);
        CHECK(published.size() == 1);
        // Recorded for the ttl (5 minutes by default), as `=<result>`.
        auto const held = server.cli({"GET", "mesa_idempotency:4:race_chat"});
        CHECK((held == "=first" || held == "=second"));
        auto const ttl = std::stoll(server.cli({"PTTL", "mesa_idempotency:4:race_chat"}));
        CHECK(ttl > 290000);
        CHECK(ttl <= 300000);
        // A repeat afterwards is replayed; another key sends again.
        one.dispatch(m, {"*"}, {}, {"race", "third"}, got.handler());
        two.dispatch(m, {"*"}, {}, {"other", "fourth"}, got.handler());
        REQUIRE(run_until(ioc, [&] { return got.results.size() == 4; }));
        CHECK(got.results[2].outcome == send_outcome::replayed);
        CHECK(got.results[2].result == held.substr(1));
        CHECK(got.results[3].outcome == send_outcome::sent);
        REQUIRE(run_until(ioc, [&] { return published.size() == 2; }));
    }

    SUBCASE("a sync route: an offline id gets it stored once") {
        send_answers got;
        for (int i = 0; i < 3; ++i) {
            one.dispatch(m, {"away"}, {}, {"stored", "r1"}, got.handler());
            two.dispatch(m, {"away"}, {}, {"stored", "r2"}, got.handler());
        }
        REQUIRE(run_until(ioc, [&] { return got.results.size() == 6; }));
        for (auto const& ec : got.errors) CHECK_FALSE(ec);
        auto const sent = std::count_if(got.results.begin(), got.results.end(),
                                        [](auto const& r) { return r.outcome == send_outcome::sent; });
        CHECK(sent == 1);
        auto const backlog = json::parse(server.cli({"HGET", "undelivered_messages_chat", "away"}));
        CHECK(backlog.as_array().size() == 1);
    }
}

TEST_CASE("idempotency keys on Redis: an in-flight mark expires; a release frees only its own attempt's key") {
    redis_server server;
    asio::io_context ioc;
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    using state = mesa::broker::claim_result::state;
    auto claim = [&](std::string const& key, std::string const& token, std::chrono::milliseconds in_flight) {
        outcome<mesa::broker::claim_result> r;
        b.idempotent_publish({key, token, in_flight}, "ws", "{}",
                             [&](std::error_code ec, mesa::broker::claim_result c) {
                                 r = {true, ec, c};
                             });
        REQUIRE(run_until(ioc, [&] { return r.done; }));
        REQUIRE_FALSE(r.ec);
        return r.value.status;
    };
    auto finish = [&](auto&& start) {
        outcome<int> r;
        start([&](std::error_code ec) { r = {true, ec, 0}; });
        REQUIRE(run_until(ioc, [&] { return r.done; }));
        REQUIRE_FALSE(r.ec);
    };

    // A sender that crashed after its claim: refused (409) until the mark expires, then free.
    CHECK(claim("crashed", "t1", 300ms) == state::claimed);
    CHECK(server.cli({"GET", "crashed"}) == "~t1");
    CHECK(claim("crashed", "t2", 10s) == state::in_flight);
    run_until(
        ioc, [] { return false; }, 400ms);
    CHECK(claim("crashed", "t3", 10s) == state::claimed);

    // A failed attempt releases its key: only its own claim.
    finish([&](auto h) { b.idempotency_release({"crashed", "t1", 10s}, h); });
    CHECK(server.cli({"GET", "crashed"}) == "~t3");
    finish([&](auto h) { b.idempotency_release({"crashed", "t3", 10s}, h); });
    CHECK(server.cli({"EXISTS", "crashed"}) == "0");
    CHECK(claim("crashed", "t4", 10s) == state::claimed);

    // A settle after its mark expired and another attempt claimed the key changes nothing.
    finish([&](auto h) { b.idempotency_settle({"crashed", "t1", 10s}, "late", 60s, h); });
    CHECK(server.cli({"GET", "crashed"}) == "~t4");
    finish([&](auto h) { b.idempotency_settle({"crashed", "t4", 10s}, "mine", 60s, h); });
    CHECK(server.cli({"GET", "crashed"}) == "=mine");
}

TEST_CASE("idempotent dispatch on Redis: a store the replicas did not confirm is remembered, a refused one is not") {
    redis_server server;
    asio::io_context ioc;
    // One replica asked for, none there: every store is taken but unconfirmed.
    auto o = dispatcher_options(server.uri(), true);
    o.broker.replicas_to_acknowledge = 1;
    o.broker.replica_timeout = 50ms;
    redis_dispatcher d{ioc.get_executor(), o};
    auto const m = mesa::message("N", json::object{});
    send_answers got;
    d.dispatch(m, {"away"}, {}, {"unconfirmed", "r"}, got.handler());
    REQUIRE(run_until(ioc, [&] { return got.results.size() == 1; }));
    CHECK(got.errors[0] == mesa::broker::condition::taken_unconfirmed);
    d.dispatch(m, {"away"}, {}, {"unconfirmed", "r"}, got.handler());
    REQUIRE(run_until(ioc, [&] { return got.results.size() == 2; }));
    CHECK_FALSE(got.errors[1]);
    CHECK(got.results[1].outcome == mesa::send_outcome::replayed);
    CHECK(json::parse(server.cli({"HGET", "undelivered_messages_chat", "away"})).as_array().size() == 1);

    // Refused (not JSON: the script stops before the claim): nothing is kept under the key.
    mesa::broker::redis b{ioc.get_executor(), test_options(server.uri())};
    outcome<int> refused;
    b.idempotent_route(mesa::keys("chat"), {"mesa_idempotency:3:bad_chat", "t", 10s}, "{not json", {"away"}, 0, "",
                       [&](std::error_code ec, mesa::broker::claim_result, mesa::broker::route_result) {
                           refused = {true, ec, 0};
                       });
    REQUIRE(run_until(ioc, [&] { return refused.done; }));
    CHECK(refused.ec == redis_errc::server_error);
    CHECK(server.cli({"EXISTS", "mesa_idempotency:3:bad_chat"}) == "0");
}
