// Redis Sentinel: the discovery/failover state machine alone (no sockets),
// then broker::redis against a real deployment (a master, a replica, three
// sentinels) through forced failovers and a killed master.
#include <mesa/broker/detail/redis_sentinel.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <mesa/broker/redis.hpp>
#include <mesa/detail/instance_presence.hpp>

#include "../support/drive.hpp"
#include "../support/log_lines.hpp"
#include "../support/redis_fixture.hpp"

using mesa::broker::redis_errc;
using mesa::broker::detail::redis_address;
using mesa::broker::detail::redis_sentinel;
using mesa::test::joined;
using mesa::test::logged;
using mesa::test::run_until;
using namespace std::chrono_literals;
using kind = redis_sentinel::action::kind;

namespace {

std::vector<redis_address> three() { return {{"10.0.0.1", 26379}, {"10.0.0.2", 26379}, {"10.0.0.3", 26380}}; }

redis_sentinel::action const* find(redis_sentinel::actions const& actions, kind k) {
    for (auto const& a : actions)
        if (a.what == k) return &a;
    return nullptr;
}

std::string logs(redis_sentinel::actions const& actions) {
    std::string out;
    for (auto const& a : actions)
        if (a.what == kind::log) out += a.text + "\n";
    return out;
}

}  // namespace

// ---- the state machine alone ---------------------------------------------------

TEST_CASE("sentinel addresses: host, port, IPv6, default port") {
    using mesa::broker::detail::parse_sentinel_address;
    CHECK(parse_sentinel_address("10.0.0.1:26380") == redis_address{"10.0.0.1", 26380});
    CHECK(parse_sentinel_address("sentinel.local") == redis_address{"sentinel.local", 26379});
    CHECK(parse_sentinel_address("[::1]:5000") == redis_address{"::1", 5000});
    CHECK(parse_sentinel_address("[::1]").port == 26379);
    CHECK(redis_address{"::1", 5000}.describe() == "[::1]:5000");
    for (char const* bad : {"", ":1", "h:", "h:0", "h:70000", "h:x", "[::1", "redis://h:1"})
        CHECK_THROWS_AS(parse_sentinel_address(bad), std::invalid_argument);
}

TEST_CASE("sentinel machine: asks in turn, connects, confirms, follows a loss") {
    redis_sentinel m{three(), "mymaster", 100ms, 1000ms};
    auto a = m.start();
    REQUIRE(a.size() == 2);
    CHECK(a[0].what == kind::ask);
    CHECK(a[0].sentinel == 0);
    CHECK(a[1].what == kind::watch);
    CHECK(a[1].sentinel == 0);
    CHECK(a[1].delay == 0ms);
    auto const q0 = a[0].query;

    // Sentinel 0 is down: sentinel 1 is asked.
    a = m.unreachable(q0, "connection refused");
    REQUIRE(a.size() == 1);
    CHECK(a[0].what == kind::ask);
    CHECK(a[0].sentinel == 1);
    auto const q1 = a[0].query;
    CHECK(m.unreachable(q0, "late").empty());  // a stale answer changes nothing

    a = m.answered(q1, redis_address{"10.0.1.1", 6379});
    REQUIRE(a.size() == 1);
    CHECK(a[0].what == kind::connect);
    CHECK(a[0].master == redis_address{"10.0.1.1", 6379});
    CHECK(m.current() == redis_sentinel::phase::connecting);
    a = m.master_ready();
    CHECK(m.current() == redis_sentinel::phase::connected);
    CHECK(logs(a).find("master 'mymaster' is 10.0.1.1:6379") != std::string::npos);
    CHECK(m.master_ready().empty());

    // Lost: ask again at once, the sentinel that answered first.
    a = m.master_down("closed by the server");
    REQUIRE(find(a, kind::ask));
    CHECK(find(a, kind::ask)->sentinel == 1);
    CHECK_FALSE(find(a, kind::fail_waiting));
    CHECK(logs(a).find("lost") != std::string::npos);
    CHECK(m.master_down("the other connection").empty());  // already asking
    a = m.answered(find(a, kind::ask)->query, redis_address{"10.0.1.2", 6379});
    CHECK(find(a, kind::connect)->master == redis_address{"10.0.1.2", 6379});
}

TEST_CASE("sentinel machine: an address that does not work waits the backoff, doubling, then asks again") {
    redis_sentinel m{three(), "mymaster", 100ms, 300ms};
    auto a = m.start();
    a = m.answered(a[0].query, redis_address{"10.0.1.1", 6379});
    std::vector<std::chrono::milliseconds> delays;
    for (int i = 0; i < 4; ++i) {
        a = m.master_down("not a master: its role is slave");
        REQUIRE(find(a, kind::fail_waiting));
        CHECK(find(a, kind::fail_waiting)->error == redis_errc::disconnected);
        REQUIRE(find(a, kind::wait));
        delays.push_back(find(a, kind::wait)->delay);
        CHECK(m.current() == redis_sentinel::phase::waiting);
        CHECK(m.master_down("again").empty());
        a = m.timer();
        REQUIRE(find(a, kind::ask));
        a = m.answered(find(a, kind::ask)->query, redis_address{"10.0.1.1", 6379});
        REQUIRE(find(a, kind::connect));
    }
    CHECK(delays == std::vector<std::chrono::milliseconds>{100ms, 200ms, 300ms, 300ms});
    m.master_ready();
    a = m.master_down("lost");
    a = m.answered(find(a, kind::ask)->query, redis_address{"10.0.1.1", 6379});
    a = m.master_down("refused");
    CHECK(find(a, kind::wait)->delay == 100ms);  // reset by the success
    CHECK(m.timer().size() == 1);
    CHECK(m.timer().empty());  // not waiting any more
}

TEST_CASE("sentinel machine: a name no sentinel knows fails with master_unknown; none reachable with disconnected") {
    redis_sentinel m{three(), "nosuch", 100ms, 1000ms};
    auto a = m.start();
    auto q = a[0].query;
    a = m.answered(q, std::nullopt);
    REQUIRE(a.size() == 1);
    a = m.unreachable(a[0].query, "refused");
    a = m.answered(a[0].query, std::nullopt);
    REQUIRE(find(a, kind::fail_waiting));
    CHECK(find(a, kind::fail_waiting)->error == redis_errc::master_unknown);
    CHECK(logs(a).find("no sentinel knows a master named 'nosuch'") != std::string::npos);
    CHECK(find(a, kind::wait)->delay == 100ms);
    CHECK(m.current() == redis_sentinel::phase::waiting);

    a = m.timer();
    for (int i = 0; i < 3; ++i) {
        REQUIRE(find(a, kind::ask));
        a = m.unreachable(find(a, kind::ask)->query, "refused");
    }
    CHECK(find(a, kind::fail_waiting)->error == redis_errc::disconnected);
    CHECK(logs(a).find("no sentinel reachable") != std::string::npos);
    CHECK(find(a, kind::wait)->delay == 200ms);
}

TEST_CASE("sentinel machine: READONLY and +switch-master move to the new master") {
    redis_sentinel m{three(), "mymaster", 100ms, 1000ms};
    auto a = m.start();
    m.answered(a[0].query, redis_address{"10.0.1.1", 6379});
    m.master_ready();

    CHECK(m.switched("other 10.0.1.1 6379 10.0.1.9 6379").empty());         // another master's
    CHECK(m.switched("mymaster 10.0.1.0 6379 10.0.1.1 6379").empty());      // already there
    CHECK(m.switched("mymaster 10.0.1.1 6379 10.0.1.2 notaport").empty());  // garbled
    a = m.switched("mymaster 10.0.1.1 6379 10.0.1.2 6380");
    REQUIRE(find(a, kind::connect));
    CHECK(find(a, kind::connect)->master == redis_address{"10.0.1.2", 6380});
    CHECK(logs(a).find("switched") != std::string::npos);
    m.master_ready();

    a = m.readonly();
    REQUIRE(find(a, kind::ask));
    CHECK(logs(a).find("READONLY") != std::string::npos);
    CHECK(m.readonly().empty());  // already asking

    // A switch while waiting goes there at once.
    a = m.answered(find(a, kind::ask)->query, redis_address{"10.0.1.2", 6380});
    m.master_down("refused");
    CHECK(m.current() == redis_sentinel::phase::waiting);
    a = m.switched("mymaster 10.0.1.2 6380 10.0.1.3 6379");
    CHECK(find(a, kind::connect)->master == redis_address{"10.0.1.3", 6379});
}

TEST_CASE("sentinel machine: a lost watch moves to the next sentinel with backoff") {
    redis_sentinel m{three(), "mymaster", 100ms, 1000ms};
    m.start();
    auto a = m.watch_down();
    REQUIRE(a.size() == 1);
    CHECK(a[0].sentinel == 1);
    CHECK(a[0].delay == 100ms);
    a = m.watch_down();
    CHECK(a[0].sentinel == 2);
    CHECK(a[0].delay == 200ms);
    a = m.watch_down();
    CHECK(a[0].sentinel == 0);
    m.watch_ready();
    CHECK(m.watch_down()[0].delay == 100ms);
}

// ---- against real sentinels ---------------------------------------------------

namespace {

mesa::broker::redis::options sentinel_options(mesa::test::redis_sentinel_group& g, std::vector<std::string>* log,
                                              std::string name = {}) {
    mesa::broker::redis::options o;
    o.sentinels = g.sentinel_addresses();
    o.sentinel_master = name.empty() ? g.name() : name;
    o.reconnect_initial = 20ms;
    o.reconnect_max = 500ms;
    o.connect_timeout = 1000ms;
    if (log) o.on_log = [log](std::string text) { log->push_back(std::move(text)); };
    return o;
}

/// A publication from `from` heard on `heard`'s subscription (publishing again until it is).
bool crosses(asio::io_context& ioc, mesa::broker::redis& from, std::vector<std::string> const& heard,
             std::string const& text, std::chrono::milliseconds timeout = 20s) {
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    auto has = [&] { return std::find(heard.begin(), heard.end(), text) != heard.end(); };
    while (!has() && std::chrono::steady_clock::now() < deadline) {
        from.publish("ws", text);
        run_until(ioc, has, 100ms);
    }
    return has();
}

/// One backlog append through `broker`: its result.
std::error_code append_once(asio::io_context& ioc, mesa::broker::redis& broker) {
    std::optional<std::error_code> r;
    broker.backlog_append("undelivered_messages", "u", R"({"op":0,"d":{}})", 0,
                          [&](std::error_code ec, std::int64_t) { r = ec; });
    REQUIRE(run_until(
        ioc, [&] { return r.has_value(); }, 20s));
    return *r;
}

/// The last master the log says a broker connected to is not on `old_port`.
bool moved_from(std::vector<std::string> const& log, std::uint16_t old_port) {
    for (auto it = log.rbegin(); it != log.rend(); ++it)
        if (it->find("' is 127.0.0.1:") != std::string::npos)
            return it->substr(it->rfind(':') + 1) != std::to_string(old_port);
    return false;
}

struct fake_server {
    mesa::keys keys{"chat"};
    std::int64_t connections = 2;
    mesa::detail::instance_presence<mesa::broker::redis>::socket_counts ids{{"u1", 1}, {"u2", 1}};
};

}  // namespace

TEST_CASE("sentinel: start-up through the sentinels, one of them down, and a wrong master name") {
    mesa::test::redis_sentinel_group group;
    asio::io_context ioc;
    std::vector<std::string> log;
    auto o = sentinel_options(group, &log);
    // The first sentinel listed is down: the next one answers.
    o.sentinels.insert(o.sentinels.begin(), "127.0.0.1:" + std::to_string(mesa::test::free_port()));
    mesa::broker::redis b{ioc.get_executor(), o};
    std::vector<std::string> heard;
    bool subscribed = false;
    b.subscribe(
        "ws", [&](std::string_view p) { heard.emplace_back(p); }, [&](std::error_code ec) { subscribed = !ec; });
    std::optional<std::error_code> added;
    b.set_add("connected_clients", "u1", [&](std::error_code ec) { added = ec; });  // waits for the master
    REQUIRE(run_until(
        ioc, [&] { return added && b.connected(); }, 20s));
    INFO(joined(log));
    CHECK_FALSE(*added);
    CHECK(group.master().cli({"SISMEMBER", "connected_clients", "u1"}) == "1");
    CHECK(logged(log, "master 'mymaster' is 127.0.0.1:" + std::to_string(group.master_port())));
    REQUIRE(crosses(ioc, b, heard, "hello"));

    // With sentinels a store waits for the replicas unless told otherwise: with
    // the replica detached it is reported as not replicated, with 0 it is not.
    auto store = [&](mesa::broker::redis& broker) { return append_once(ioc, broker); };
    auto quick = sentinel_options(group, &log);
    quick.replica_timeout = 300ms;
    mesa::broker::redis acknowledged{ioc.get_executor(), quick};
    quick.replicas_to_acknowledge = 0;
    mesa::broker::redis unacknowledged{ioc.get_executor(), quick};
    CHECK_FALSE(store(acknowledged));
    auto& replica =
        group.node(group.master_port() == group.node_ports()[0] ? group.node_ports()[1] : group.node_ports()[0]);
    CHECK(replica.cli({"REPLICAOF", "NO", "ONE"}) == "OK");
    CHECK(store(acknowledged) == redis_errc::not_replicated);
    CHECK_FALSE(store(unacknowledged));
    CHECK(logged(log, "acknowledged by 0 replicas of 1"));
    CHECK(replica.cli({"REPLICAOF", "127.0.0.1", std::to_string(group.master_port())}) == "OK");

    // A master name no sentinel knows: a clear log line and a clear error, no hang.
    std::vector<std::string> wrong_log;
    mesa::broker::redis wrong{ioc.get_executor(), sentinel_options(group, &wrong_log, "nosuch")};
    std::optional<std::error_code> refused;
    wrong.set_add("s", "m", [&](std::error_code ec) { refused = ec; });
    REQUIRE(run_until(
        ioc, [&] { return refused.has_value(); }, 20s));
    CHECK(*refused == redis_errc::master_unknown);
    CHECK(logged(wrong_log, "no sentinel knows a master named 'nosuch'"));
    CHECK_FALSE(wrong.connected());
    // Later calls fail too, never inline.
    std::optional<std::error_code> later;
    wrong.counter_add("c", 1, [&](std::error_code ec) { later = ec; });
    CHECK_FALSE(later);
    REQUIRE(run_until(
        ioc, [&] { return later.has_value(); }, 20s));
    CHECK(*later == redis_errc::master_unknown);

    auto no_name = sentinel_options(group, nullptr);
    no_name.sentinel_master.clear();
    CHECK_THROWS_AS(mesa::broker::redis(ioc.get_executor(), no_name), std::invalid_argument);
    auto bad = sentinel_options(group, nullptr);
    bad.sentinels.push_back("h:port");
    CHECK_THROWS_AS(mesa::broker::redis(ioc.get_executor(), bad), std::invalid_argument);
}

TEST_CASE("sentinel: by default a store waits for every replica, so the one a failover promotes has it") {
    mesa::test::redis_sentinel_group group{"mymaster", {}, 2};
    asio::io_context ioc;
    std::vector<std::string> log;
    auto o = sentinel_options(group, &log);
    o.replica_timeout = 300ms;
    mesa::broker::redis every{ioc.get_executor(), o};
    o.replicas_to_acknowledge = 1;
    mesa::broker::redis one{ioc.get_executor(), o};
    auto store = [&](mesa::broker::redis& broker) { return append_once(ioc, broker); };
    INFO(joined(log));
    CHECK_FALSE(store(every));
    // One replica stops answering (still connected): it would not have the
    // store if a failover promoted it.
    auto const ports = group.node_ports();
    auto& stalled = group.node(ports[1] == group.master_port() ? ports[2] : ports[1]);
    stalled.signal(SIGSTOP);
    CHECK(store(every) == redis_errc::not_replicated);
    CHECK(logged(log, "acknowledged by 1 replicas of 2"));
    CHECK_FALSE(store(one));
    stalled.signal(SIGCONT);
    CHECK_FALSE(store(every));

    // A failover first takes the replica it promotes away from the old master;
    // the other one acknowledges the old master's writes until it is moved
    // (and then drops them): a replica that left still counts for a while.
    CHECK(stalled.cli({"REPLICAOF", "NO", "ONE"}) == "OK");
    CHECK(store(every) == redis_errc::not_replicated);
    CHECK(logged(log, "acknowledged by 1 replicas of 2"));
    o.replicas_to_acknowledge.reset();
    o.replica_grace = 0ms;
    mesa::broker::redis forgetful{ioc.get_executor(), o};
    CHECK_FALSE(store(forgetful));  // without the grace: one replica listed, one acknowledged
}

TEST_CASE("replicas_to_acknowledge: a store not acknowledged in time fails; nothing else waits behind its WAIT") {
    mesa::test::redis_server server;  // no replica: WAIT 1 always times out
    asio::io_context ioc;
    std::vector<std::string> log;
    mesa::broker::redis::options o;
    o.uri = server.uri();
    o.replicas_to_acknowledge = 1;
    o.replica_timeout = 1500ms;
    o.on_log = [&](std::string text) { log.push_back(std::move(text)); };
    mesa::broker::redis b{ioc.get_executor(), o};
    std::vector<std::string> order;
    std::optional<std::error_code> appended;
    b.backlog_append("undelivered_messages", "u", R"({"op":0,"d":{}})", 0, [&](std::error_code ec, std::int64_t) {
        appended = ec;
        order.push_back("append");
    });
    b.publish("ws", "x", [&](std::error_code ec) {
        CHECK_FALSE(ec);
        order.push_back("publish");
    });
    b.counter_add("connected_clients_count", 1, [&](std::error_code ec) {
        CHECK_FALSE(ec);
        order.push_back("counter");
    });
    REQUIRE(run_until(
        ioc, [&] { return appended.has_value(); }, 10s));
    CHECK(*appended == redis_errc::not_replicated);
    CHECK(order == std::vector<std::string>{"publish", "counter", "append"});
    CHECK(logged(log, "acknowledged by 0 replicas of 1"));
    // Stored on the master all the same: a retry may duplicate it.
    CHECK(server.cli({"HGET", "undelivered_messages", "u"}) == R"([{"op":0,"d":{}}])");
}

namespace {

/// Two brokers through the sentinels, one of them acknowledged by a replica,
/// and a server-like user of the second keeping its presence.
struct sentinel_cluster {
    explicit sentinel_cluster(mesa::test::redis_sentinel_group& g)
        : group(g),
          a(ioc.get_executor(), durable(sentinel_options(g, &log_a))),
          b(ioc.get_executor(), sentinel_options(g, &log_b)),
          presence(ioc, b, server.keys, "I1", 2000ms, events()) {
        a.subscribe("ws", [&](std::string_view p) { heard_a.emplace_back(p); });
        b.subscribe("ws", [&](std::string_view p) { heard_b.emplace_back(p); });
        b.on_restored([this] { presence.restored(); });
        presence.start();
    }

    static mesa::broker::redis::options durable(mesa::broker::redis::options o) {
        o.replicas_to_acknowledge = 1;
        o.replica_timeout = 2000ms;
        return o;
    }
    mesa::detail::instance_presence<mesa::broker::redis>::events events() {
        mesa::detail::instance_presence<mesa::broker::redis>::events e;
        e.snapshot = [this] { return std::make_pair(server.connections, server.ids); };
        e.on_error = [this](std::string const& text) { log_b.push_back(text); };
        return e;
    }

    /// Both brokers connected, publications crossing both ways.
    bool exchanging(std::string const& tag, std::chrono::milliseconds timeout = 40s) {
        if (!run_until(
                ioc, [&] { return a.connected() && b.connected(); }, timeout))
            return false;
        return crosses(ioc, a, heard_b, "a-" + tag, timeout) && crosses(ioc, b, heard_a, "b-" + tag, timeout);
    }

    /// sync_route of one message for an offline id through `a`, retried while it fails.
    std::error_code store(std::string const& id, int n, std::chrono::milliseconds timeout = 20s) {
        auto const deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            std::optional<std::error_code> r;
            a.sync_route(server.keys, R"({"op":0,"d":{"n":)" + std::to_string(n) + "}}", {id}, 100, "test",
                         [&](std::error_code ec, mesa::broker::route_result) { r = ec; });
            REQUIRE(run_until(
                ioc, [&] { return r.has_value(); }, 20s));
            if (!*r || std::chrono::steady_clock::now() > deadline) return *r;
            run_until(
                ioc, [] { return false; }, 100ms);
        }
    }

    mesa::test::redis_sentinel_group& group;
    asio::io_context ioc;
    std::vector<std::string> log_a, log_b, heard_a, heard_b;
    fake_server server;
    mesa::broker::redis a, b;
    mesa::detail::instance_presence<mesa::broker::redis> presence;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("sentinel: a forced failover while two brokers exchange publications and presence is kept") {
    mesa::test::redis_sentinel_group group;
    sentinel_cluster c{group};
    REQUIRE(c.exchanging("before"));
    REQUIRE(run_until(
        c.ioc, [&] { return c.presence.epoch() > 0; }, 10s));
    CHECK_FALSE(c.store("u9", 1));  // acknowledged by the replica
    auto const old_port = group.master_port();
    auto const old_epoch = c.presence.epoch();

    auto const t0 = std::chrono::steady_clock::now();
    group.failover();
    auto const switched = run_until(
        c.ioc,
        [&] {
            return c.a.connected() && c.b.connected() && moved_from(c.log_a, old_port) && moved_from(c.log_b, old_port);
        },
        40s);
    INFO("a:\n" << joined(c.log_a) << "b:\n" << joined(c.log_b));
    REQUIRE(switched);
    REQUIRE(c.exchanging("after"));
    auto const recovered = seconds_since(t0);
    auto const new_port = group.master_port();
    CHECK(new_port != old_port);
    std::cerr << "sentinel: forced failover: both brokers exchanging on the new master after " << recovered << " s\n";

    // Presence registered again on the new master; the stored backlog is there.
    REQUIRE(run_until(
        c.ioc, [&] { return c.presence.epoch() > old_epoch; }, 20s));
    auto& master = group.node(new_port);
    CHECK(master.cli({"HGET", "mesa_instances_chat", "I1"}) == std::to_string(c.presence.epoch()));
    CHECK(master.cli({"SISMEMBER", "connected_clients_chat", "u1"}) == "1");
    CHECK(master.cli({"SISMEMBER", "connected_clients_chat", "u2"}) == "1");
    CHECK(master.cli({"HGET", "undelivered_messages_chat", "u9"}) == R"([{"op":0,"d":{"n":1}}])");
    // Stores work there, acknowledged by the old master, now its replica.
    // (Until the old master has synced, stores are reported failed: retries may duplicate.)
    CHECK_FALSE(c.store("u9", 2, 30s));
    auto const stored = master.cli({"HGET", "undelivered_messages_chat", "u9"});
    CHECK(stored.rfind(R"([{"op":0,"d":{"n":1}},{"op":0,"d":{"n":2}})", 0) == 0);
}

TEST_CASE("sentinel: the master killed, a replica elected; an acknowledged store survives") {
    mesa::test::redis_sentinel_group group;
    sentinel_cluster c{group};
    REQUIRE(c.exchanging("before"));
    REQUIRE(run_until(
        c.ioc, [&] { return c.presence.epoch() > 0; }, 10s));
    auto const old_port = group.master_port();
    REQUIRE_FALSE(c.store("u9", 1));  // acknowledged: the replica has it

    auto const t0 = std::chrono::steady_clock::now();
    group.node(old_port).stop(SIGKILL);
    auto const elected = run_until(
        c.ioc,
        [&] {
            return c.a.connected() && c.b.connected() && moved_from(c.log_a, old_port) && moved_from(c.log_b, old_port);
        },
        40s);
    INFO("a:\n" << joined(c.log_a) << "b:\n" << joined(c.log_b));
    REQUIRE(elected);
    REQUIRE(c.exchanging("after"));
    auto const recovered = seconds_since(t0);
    auto const new_port = group.master_port();
    CHECK(new_port != old_port);
    std::cerr << "sentinel: master killed: both brokers exchanging on the elected master after " << recovered << " s\n";

    auto& master = group.node(new_port);
    CHECK(master.cli({"HGET", "undelivered_messages_chat", "u9"}) == R"([{"op":0,"d":{"n":1}}])");
    REQUIRE(run_until(
        c.ioc,
        [&] {
            return master.cli({"HGET", "mesa_instances_chat", "I1"}) == std::to_string(c.presence.epoch());
        },
        20s));
    CHECK(master.cli({"SISMEMBER", "connected_clients_chat", "u1"}) == "1");
    // No replica left to acknowledge: stores fail rather than pretend.
    std::optional<std::error_code> r;
    c.a.sync_route(c.server.keys, R"({"op":0,"d":{"n":2}})", {"u9"}, 100, "test",
                   [&](std::error_code ec, mesa::broker::route_result) { r = ec; });
    REQUIRE(run_until(
        c.ioc, [&] { return r.has_value(); }, 20s));
    CHECK(*r == redis_errc::not_replicated);
}
