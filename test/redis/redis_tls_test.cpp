// mesa::broker::redis over TLS (<mesa/broker/redis_tls.hpp>) against a real
// redis-server serving TLS only (--port 0 --tls-port N), with certificates
// made at run time by test/support/make_redis_certs.sh ($MAKE_REDIS_CERTS).
#include <mesa/broker/redis_tls.hpp>

#include <mesa/broker/redis.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/drive.hpp"
#include "../support/log_lines.hpp"
#include "../support/redis_fixture.hpp"

using mesa::broker::redis_errc;
using mesa::broker::redis_tls_options;
using mesa::test::joined;
using mesa::test::logged;
using mesa::test::redis_server;
using mesa::test::run_until;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

/// The certificates of make_redis_certs.sh, made once in a temporary directory.
struct certificates {
    fs::path dir;
    certificates() {
        char pattern[] = "/tmp/mesa-redis-tls-XXXXXX";
        if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
        dir = pattern;
        char const* script = std::getenv("MAKE_REDIS_CERTS");
        if (!script || !*script) throw std::runtime_error("MAKE_REDIS_CERTS (test/support/make_redis_certs.sh) unset");
        auto const cmd = std::string(script) + " " + dir.string();
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot make certificates with: " + cmd);
    }
    ~certificates() {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    }
    std::string operator()(std::string const& name) const { return (dir / name).string(); }
};

certificates const& certs() {
    static certificates const c;
    return c;
}

/// A redis-server serving TLS only, with certificate `name` (.pem/.key), and
/// client certificates signed by ca.pem required when `auth_clients`.
std::unique_ptr<redis_server> tls_redis(std::string const& name = "server", bool auth_clients = false,
                                        std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--tls-cert-file",      certs()(name + ".pem"),     "--tls-key-file",
                                  certs()(name + ".key"), "--tls-ca-cert-file",       certs()("ca.pem"),
                                  "--tls-auth-clients",   auth_clients ? "yes" : "no"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<redis_server>(args, std::string(), true);
}

redis_tls_options trusting_ca() {
    redis_tls_options t;
    t.ca_file = certs()("ca.pem");
    return t;
}

mesa::broker::redis::options tls_options(std::string uri, redis_tls_options const& tls,
                                         std::vector<std::string>* log = nullptr) {
    mesa::broker::redis::options o;
    o.uri = std::move(uri);
    o.tls = mesa::broker::redis_tls(tls);
    o.reconnect_initial = 20ms;
    o.reconnect_max = 200ms;
    if (log) o.on_log = [log](std::string text) { log->push_back(std::move(text)); };
    return o;
}

std::string rediss(redis_server const& s, std::string const& host = "127.0.0.1") {
    return "rediss://" + host + ":" + std::to_string(s.port());
}

/// A broker refused by the server's certificate: it logs `reason`, is not
/// connected, and its operations fail with disconnected.
void check_refused(std::string const& uri, redis_tls_options const& tls, std::string const& reason) {
    asio::io_context ioc;
    std::vector<std::string> log;
    mesa::broker::redis b{ioc.get_executor(), tls_options(uri, tls, &log)};
    REQUIRE_MESSAGE(run_until(ioc, [&] { return logged(log, reason); }), joined(log));
    INFO(joined(log));
    CHECK(logged(log, "cannot connect ("));
    CHECK_FALSE(b.connected());
    std::optional<std::error_code> added;
    b.set_add("s", "x", [&](std::error_code ec) { added = ec; });
    REQUIRE(run_until(ioc, [&] { return added.has_value(); }));
    CHECK(*added == redis_errc::disconnected);
    CHECK_FALSE(b.connected());
}

/// Two brokers on `uri`: a publication of one reaches the other's subscriber.
void check_publish_subscribe(std::string const& uri, redis_tls_options const& tls) {
    asio::io_context ioc;
    std::vector<std::string> log;
    mesa::broker::redis a{ioc.get_executor(), tls_options(uri, tls, &log)};
    mesa::broker::redis b{ioc.get_executor(), tls_options(uri, tls, &log)};
    std::vector<std::string> got;
    bool subscribed = false;
    b.subscribe(
        "ws", [&](std::string_view p) { got.emplace_back(p); }, [&](std::error_code ec) { subscribed = !ec; });
    REQUIRE_MESSAGE(run_until(ioc, [&] { return subscribed && a.connected() && b.connected(); }), joined(log));
    a.publish("ws", R"({"message":{"op":0,"d":{"n":1},"t":"T"},"recipients":["*"]})");
    REQUIRE(run_until(ioc, [&] { return got.size() == 1; }));
    CHECK(got[0] == R"({"message":{"op":0,"d":{"n":1},"t":"T"},"recipients":["*"]})");
    std::optional<std::vector<std::string>> members;
    a.set_add("connected_clients", "alice");
    a.set_members("connected_clients", [&](std::error_code ec, std::vector<std::string> m) {
        members = ec ? std::vector<std::string>{"error"} : std::move(m);
    });
    REQUIRE(run_until(ioc, [&] { return members.has_value(); }));
    CHECK(*members == std::vector<std::string>{"alice"});
    CHECK_FALSE(logged(log, "failed"));
}

}  // namespace

TEST_CASE("redis tls: rediss:// parses; a broker without options::tls refuses it naming the header") {
    auto const e = mesa::broker::detail::parse_redis_uri("rediss://:pw@redis.example.com:6380/3");
    CHECK(e.tls);
    CHECK(e.host == "redis.example.com");
    CHECK(e.port == 6380);
    CHECK(e.password == "pw");
    CHECK(e.db == 3);
    CHECK_FALSE(mesa::broker::detail::parse_redis_uri("redis://h").tls);

    asio::io_context ioc;
    mesa::broker::redis::options o;
    o.uri = "rediss://127.0.0.1:6380";
    try {
        mesa::broker::redis b{ioc.get_executor(), o};
        FAIL("rediss:// without options::tls was accepted");
    } catch (std::invalid_argument const& e) {
        CHECK(std::string(e.what()).find("<mesa/broker/redis_tls.hpp>") != std::string::npos);
        CHECK(std::string(e.what()).find("mesa::tls") != std::string::npos);
    }
}

TEST_CASE("redis tls: bad files are refused at construction, naming them") {
    redis_tls_options missing_ca;
    missing_ca.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_WITH_AS(mesa::broker::redis_tls(missing_ca), doctest::Contains("/nonexistent/ca.pem"),
                         std::invalid_argument);
    auto no_key = trusting_ca();
    no_key.cert_file = certs()("client.pem");
    CHECK_THROWS_WITH_AS(mesa::broker::redis_tls(no_key), doctest::Contains("key_file"), std::invalid_argument);
    auto wrong_key = trusting_ca();
    wrong_key.cert_file = certs()("client.pem");
    wrong_key.key_file = certs()("server.key");
    CHECK_THROWS_WITH_AS(mesa::broker::redis_tls(wrong_key), doctest::Contains("server.key': key values mismatch"),
                         std::invalid_argument);
}

TEST_CASE("redis tls: a trusted certificate works, by IP address and by host name") {
    auto server = tls_redis();
    check_publish_subscribe(rediss(*server), trusting_ca());
    check_publish_subscribe(rediss(*server, "localhost"), trusting_ca());
}

TEST_CASE("redis tls: a plain redis:// uri with options::tls set speaks TLS too (as ioredis's tls option)") {
    auto server = tls_redis();
    check_publish_subscribe("redis://127.0.0.1:" + std::to_string(server->port()), trusting_ca());
}

TEST_CASE("redis tls: an untrusted certificate is refused, saying so") {
    auto server = tls_redis("untrusted");
    check_refused(rediss(*server), trusting_ca(), "untrusted: the server's certificate is not signed by a trusted CA");
    // The system's trust store does not know the test CA either.
    check_refused(rediss(*server), {}, "untrusted");
}

TEST_CASE("redis tls: a certificate for another host is refused; server_name names the expected one") {
    auto server = tls_redis("wrong-host");
    check_refused(rediss(*server), trusting_ca(), "wrong host: the server's certificate does not name '127.0.0.1'");
    check_refused(rediss(*server, "localhost"), trusting_ca(), "does not name 'localhost'");
    auto named = trusting_ca();
    named.server_name = "redis.test";
    check_publish_subscribe(rediss(*server), named);
}

TEST_CASE("redis tls: an expired certificate is refused, saying so") {
    auto server = tls_redis("expired");
    check_refused(rediss(*server), trusting_ca(), "expired: the server's certificate has expired");
}

TEST_CASE("redis tls: tls-auth-clients yes refuses a client without a certificate and accepts one with it") {
    SUBCASE("TLS 1.3: the refusal shows on the first read") {
        auto server = tls_redis("server", true);
        check_refused(rediss(*server), trusting_ca(), "the server requires a client certificate");
        auto with_cert = trusting_ca();
        with_cert.cert_file = certs()("client.pem");
        with_cert.key_file = certs()("client.key");
        check_publish_subscribe(rediss(*server), with_cert);
    }
    SUBCASE("TLS 1.2: the refusal ends the handshake") {
        auto server = tls_redis("server", true, {"--tls-protocols", "TLSv1.2"});
        asio::io_context ioc;
        std::vector<std::string> log;
        mesa::broker::redis b{ioc.get_executor(), tls_options(rediss(*server), trusting_ca(), &log)};
        REQUIRE_MESSAGE(run_until(ioc, [&] { return logged(log, "the server requires a client certificate"); }),
                        joined(log));
        CHECK_FALSE(b.connected());
    }
}

TEST_CASE("redis tls: verification off (tests only) accepts any certificate and is logged as a warning") {
    auto server = tls_redis("untrusted");
    redis_tls_options insecure;
    insecure.verify = false;
    asio::io_context ioc;
    std::vector<std::string> log;
    mesa::broker::redis b{ioc.get_executor(), tls_options(rediss(*server), insecure, &log)};
    CHECK(logged(log, "TLS certificate verification is off"));
    REQUIRE_MESSAGE(run_until(ioc, [&] { return b.connected(); }), joined(log));
}

TEST_CASE("redis tls: a Redis restart is a reconnection: on_restored, subscriptions renewed") {
    auto server = tls_redis();
    asio::io_context ioc;
    std::vector<std::string> log_a, log_b;
    mesa::broker::redis a{ioc.get_executor(), tls_options(rediss(*server), trusting_ca(), &log_a)};
    mesa::broker::redis b{ioc.get_executor(), tls_options(rediss(*server), trusting_ca(), &log_b)};
    int restored = 0, resubscribed = 0;
    a.on_restored([&] { ++restored; });
    b.on_resubscribed([&] { ++resubscribed; });
    std::vector<std::string> got;
    bool subscribed = false;
    b.subscribe(
        "ws", [&](std::string_view p) { got.emplace_back(p); }, [&](std::error_code ec) { subscribed = !ec; });
    REQUIRE(run_until(ioc, [&] { return subscribed && a.connected() && b.connected(); }));
    a.publish("ws", "before");
    REQUIRE(run_until(ioc, [&] { return got.size() == 1; }));

    server->stop();  // SIGKILL: an outage
    REQUIRE(run_until(ioc, [&] { return !a.connected() && !b.connected(); }));
    server->start();  // same port
    REQUIRE_MESSAGE(run_until(
                        ioc, [&] { return a.connected() && b.connected() && restored == 1 && resubscribed == 1; }, 10s),
                    (joined(log_a) + joined(log_b)));
    CHECK(logged(log_a, "restored"));
    a.publish("ws", "after");
    REQUIRE(run_until(ioc, [&] { return got.size() == 2; }));
    CHECK(got[1] == "after");
}

TEST_CASE("redis tls: through sentinels over TLS; the master they report by IP address is verified; a failover") {
    mesa::test::redis_sentinel_group group(
        "tlsmaster", {"--tls-cert-file", certs()("server.pem"), "--tls-key-file", certs()("server.key"),
                      "--tls-ca-cert-file", certs()("ca.pem"), "--tls-auth-clients", "no"});
    asio::io_context ioc;
    std::vector<std::string> log_a, log_b;
    auto options = [&](std::vector<std::string>* log) {
        mesa::broker::redis::options o;
        o.sentinels = group.sentinel_addresses();
        o.sentinel_master = group.name();
        o.tls = mesa::broker::redis_tls(trusting_ca());
        o.reconnect_initial = 20ms;
        o.reconnect_max = 500ms;
        o.connect_timeout = 1000ms;
        o.on_log = [log](std::string text) { log->push_back(std::move(text)); };
        return o;
    };
    mesa::broker::redis a{ioc.get_executor(), options(&log_a)};
    mesa::broker::redis b{ioc.get_executor(), options(&log_b)};
    std::vector<std::string> heard;
    b.subscribe("ws", [&](std::string_view p) { heard.emplace_back(p); });
    auto crosses = [&](std::string const& text) {
        auto const deadline = std::chrono::steady_clock::now() + 20s;
        auto has = [&] { return std::find(heard.begin(), heard.end(), text) != heard.end(); };
        while (!has() && std::chrono::steady_clock::now() < deadline) {
            a.publish("ws", text);
            run_until(ioc, has, 100ms);
        }
        return has();
    };
    REQUIRE_MESSAGE(crosses("before"), (joined(log_a) + joined(log_b)));
    CHECK(logged(log_a, "master 'tlsmaster' is 127.0.0.1:"));
    auto const old_port = group.master_port();
    group.failover();
    REQUIRE_MESSAGE(run_until(
                        ioc,
                        [&] {
                            return a.connected() && b.connected() && group.master_port() != old_port &&
                                   logged(log_a,
                                          "master 'tlsmaster' is 127.0.0.1:" + std::to_string(group.master_port()));
                        },
                        40s),
                    (joined(log_a) + joined(log_b)));
    REQUIRE(crosses("after"));

    // A CA that did not sign the sentinels' certificates: no sentinel is reachable, and the log says why.
    std::vector<std::string> log_c;
    auto untrusting = options(&log_c);
    redis_tls_options other;
    other.ca_file = certs()("other-ca.pem");
    untrusting.tls = mesa::broker::redis_tls(other);
    mesa::broker::redis c{ioc.get_executor(), untrusting};
    REQUIRE_MESSAGE(run_until(ioc, [&] { return logged(log_c, "untrusted"); }), joined(log_c));
    CHECK_FALSE(c.connected());
}
