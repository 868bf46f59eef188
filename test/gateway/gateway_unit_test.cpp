// The gateway's pure parts: configuration from the environment, JWT
// verification, the HTTP API and the metrics text. No sockets, no websocketpp.
#include "../support/gateway_config.hpp"
#include "config.hpp"
#include "http_api.hpp"
#include "jwt.hpp"
#include "metrics.hpp"
#include "notify.hpp"

#include <mesa/broker/detail/redis_error.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace {

using mesa::test::env_map;
using mesa::test::mentions;

gateway::parsed_config parse(env_map const& env) { return mesa::test::parse_gateway_config(env); }

std::string b64url(std::string const& in) {
    static char const table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (unsigned char c : in) {
        bits = (bits << 8) | c;
        count += 8;
        while (count >= 6) {
            count -= 6;
            out.push_back(table[(bits >> count) & 63]);
        }
    }
    if (count > 0) out.push_back(table[(bits << (6 - count)) & 63]);
    return out;
}

std::string sign(std::string const& signing_input, std::string const& key) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<unsigned char const*>(signing_input.data()), signing_input.size(), mac, &size);
    return b64url(std::string(reinterpret_cast<char*>(mac), size));
}

std::string mint(std::string const& payload, std::string const& key,
                 std::string const& header = R"({"alg":"HS256","typ":"JWT"})") {
    auto input = b64url(header) + "." + b64url(payload);
    return input + "." + sign(input, key);
}

constexpr std::int64_t now = 1'700'000'000;

}  // namespace

TEST_CASE("config: defaults follow Mega and the reference") {
    auto p = parse({});
    REQUIRE(p.ok());
    auto const& c = p.value;
    CHECK(c.port == 4500);
    CHECK(c.threads == gateway::default_threads());
    CHECK(c.threads <= std::max(1u, std::thread::hardware_concurrency()));
    CHECK(!c.path);
    CHECK(c.namespace_name.empty());
    CHECK(!c.redis_uri);
    CHECK(!c.enforce_equal_versions);
    CHECK(!c.store_messages);
    CHECK(!c.sync_enabled);
    CHECK(c.sync_redelivery_interval_ms == 0);
    CHECK(!c.portals_enabled);
    CHECK(c.portal_distribute_load);
    CHECK(!c.heartbeats_enabled);
    CHECK(c.heartbeat_interval_ms == 10000);
    CHECK(c.heartbeat_max_attempts == 3);
    CHECK(!c.reconnects_enabled);
    CHECK(c.reconnect_interval_ms == 5000);
    CHECK(c.auth_timeout_ms == 10000);
    CHECK(!c.auth_required);
    CHECK(c.auth_send_user_object);
    CHECK(c.auth_disconnect_on_fail);
    CHECK(c.auth_store_connected_users);
    CHECK(c.enable_logging);
    CHECK(!c.ws_key);
    CHECK(!c.api_key);
    CHECK(!c.admin_port);
    CHECK(c.admin_host == "127.0.0.1");
    CHECK(c.ready_grace_ms == 10000);
    CHECK(c.shutdown_delay_ms == 0);
    CHECK(c.log_format == gateway::log_format::text);
    CHECK(c.log_level == gateway::log_level::info);
}

namespace {
/// A file holding `content`, removed with the object.
struct temp_file {
    std::string path;
    explicit temp_file(std::string const& content) {
        char name[] = "/tmp/mesa-gateway-unit-XXXXXX";
        int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        std::ofstream(path) << content;
    }
    ~temp_file() { std::remove(path.c_str()); }
};
}  // namespace

TEST_CASE("config: MESA_THREADS defaults to the CPUs the process may use, bounded by the cgroup quota") {
    CHECK(gateway::cpus_of_cpu_max("max 100000\n") == std::nullopt);
    CHECK(gateway::cpus_of_cpu_max("100000 100000\n") == 1u);
    CHECK(gateway::cpus_of_cpu_max("150000 100000") == 2u);
    CHECK(gateway::cpus_of_cpu_max("50000 100000") == 1u);
    CHECK(gateway::cpus_of_cpu_max("") == std::nullopt);
    CHECK(gateway::cpus_of_cpu_max("x y") == std::nullopt);
    CHECK(gateway::cpus_of_cpu_max("100000 0") == std::nullopt);
    auto const cpus = gateway::affinity_cpus();
    CHECK(cpus >= 1);
    temp_file one("100000 100000\n"), unlimited("max 100000\n"), many("6400000 100000\n");
    CHECK(gateway::default_threads(one.path) == 1);
    CHECK(gateway::default_threads(unlimited.path) == std::min(cpus, gateway::max_threads));
    CHECK(gateway::default_threads(many.path) == std::min(cpus, gateway::max_threads));  // the affinity mask bounds it
    CHECK(gateway::default_threads("/nonexistent/cpu.max") == std::min(cpus, gateway::max_threads));
    CHECK(parse({{"MESA_CGROUP_CPU_MAX", one.path}}).value.threads == 1);
    CHECK(parse({{"MESA_CGROUP_CPU_MAX", one.path}, {"MESA_THREADS", "3"}}).value.threads == 3);
}

TEST_CASE("config: secrets from files (X_FILE), REDIS_PASSWORD") {
    temp_file key("from-file\n"), api("api-key"), uri("redis://10.0.0.5:6380/2\n"), password("p@ss word\n"),
        empty("\n");
    auto p = parse({{"WS_KEY_FILE", key.path},
                    {"MESA_API_KEY_FILE", api.path},
                    {"REDIS_URI_FILE", uri.path},
                    {"REDIS_PASSWORD_FILE", password.path}});
    REQUIRE(p.ok());
    CHECK(p.value.ws_key == std::string("from-file"));
    CHECK(p.value.api_key == std::string("api-key"));
    CHECK(p.value.redis_uri == std::string("redis://:p%40ss%20word@10.0.0.5:6380/2"));
    CHECK_THROWS(gateway::with_redis_password("redis://pw@h:1", "x"));  // userinfo without ':' is a password
    CHECK(gateway::with_redis_password("unix:///run/redis.sock?db=2", "x") == "unix:///run/redis.sock?db=2&password=x");
    CHECK(gateway::with_redis_password("/run/redis.sock", "x") == "unix:///run/redis.sock?password=x");
    CHECK(mesa::broker::detail::parse_redis_uri(gateway::with_redis_password("redis://h", "p@ss:w/rd")).password ==
          "p@ss:w/rd");

    CHECK(mentions(parse({{"WS_KEY", "a"}, {"WS_KEY_FILE", key.path}}), "WS_KEY_FILE"));
    CHECK(mentions(parse({{"WS_KEY_FILE", "/nonexistent/key"}}), "WS_KEY_FILE"));
    CHECK(mentions(parse({{"MESA_API_KEY_FILE", empty.path}}), "MESA_API_KEY_FILE"));
    CHECK(mentions(parse({{"REDIS_PASSWORD", "x"}}), "REDIS_PASSWORD"));
    CHECK(mentions(parse({{"REDIS_URI", "redis://:a@h"}, {"REDIS_PASSWORD", "x"}}), "REDIS_PASSWORD"));
}

TEST_CASE("config: operations settings") {
    auto p = parse({{"MESA_ADMIN_PORT", "9100"},
                    {"MESA_ADMIN_HOST", "0.0.0.0"},
                    {"MESA_READY_GRACE", "0"},
                    {"MESA_SHUTDOWN_DELAY", "5000"},
                    {"LOG_FORMAT", "json"},
                    {"LOG_LEVEL", "debug"}});
    REQUIRE(p.ok());
    CHECK(p.value.admin_port == std::uint16_t(9100));
    CHECK(p.value.admin_host == "0.0.0.0");
    CHECK(p.value.ready_grace_ms == 0);
    CHECK(p.value.shutdown_delay_ms == 5000);
    CHECK(p.value.log_format == gateway::log_format::json);
    CHECK(p.value.log_level == gateway::log_level::debug);
    CHECK(parse({{"MESA_ADMIN_PORT", "0"}}).value.admin_port == std::uint16_t(0));
    CHECK(parse({{"LOG_LEVEL", "error"}}).value.log_level == gateway::log_level::error);
    for (auto const& [name, value] :
         std::vector<std::pair<char const*, char const*>>{{"MESA_ADMIN_PORT", "65536"},
                                                          {"MESA_ADMIN_PORT", "4500"},
                                                          {"MESA_ADMIN_HOST", ""},
                                                          {"MESA_READY_GRACE", "-1"},
                                                          {"MESA_SHUTDOWN_DELAY", "3600001"},
                                                          {"LOG_FORMAT", "xml"},
                                                          {"LOG_LEVEL", "verbose"}}) {
        CAPTURE(name);
        CAPTURE(value);
        CHECK(mentions(parse({{name, value}}), name));
    }
}

TEST_CASE("config: good values") {
    auto p = parse({{"MESA_PORT", "0"},
                    {"MESA_PATH", "/ws"},
                    {"MESA_NAMESPACE", "chat"},
                    {"REDIS_URI", "redis://:pw@10.0.0.5:6380/2"},
                    {"SYNC_ENABLED", "true"},
                    {"SYNC_REDELIVERY_INTERVAL", "250"},
                    {"SYNC_MAX_BACKLOG", "50"},
                    {"SYNC_MAX_ATTEMPTS", "0"},
                    {"HEARTBEATS_ENABLED", "true"},
                    {"HEARTBEAT_INTERVAL", "200"},
                    {"HEARTBEAT_MAX_ATTEMPTS", "0"},
                    {"PORTAL_DISTRIBUTE_LOAD", "false"},
                    {"AUTH_TIMEOUT", "0"},
                    {"AUTH_SEND_USER_OBJECT", "false"},
                    {"ENABLE_LOGGING", "false"},
                    {"WS_KEY", "secret"},
                    {"MESA_API_KEY", "k"}});
    REQUIRE(p.ok());
    auto const& c = p.value;
    CHECK(c.port == 0);
    CHECK(c.path == std::string("/ws"));
    CHECK(c.namespace_name == "chat");
    CHECK(c.redis_uri == std::string("redis://:pw@10.0.0.5:6380/2"));
    CHECK(c.sync_enabled);
    CHECK(c.sync_redelivery_interval_ms == 250);
    CHECK(c.sync_max_backlog == 50);
    CHECK(c.sync_max_attempts == 0);
    CHECK(c.heartbeats_enabled);
    CHECK(c.heartbeat_interval_ms == 200);
    CHECK(c.heartbeat_max_attempts == 0);
    CHECK(!c.portal_distribute_load);
    CHECK(c.auth_timeout_ms == 0);
    CHECK(!c.auth_send_user_object);
    CHECK(!c.enable_logging);
    CHECK(c.ws_key == std::string("secret"));
    CHECK(c.api_key == std::string("k"));
    auto top = parse({{"MESA_PORT", "65535"}, {"HEARTBEAT_INTERVAL", "3600000"}, {"MESA_THREADS", "256"}});
    REQUIRE(top.ok());
    CHECK(top.value.port == 65535);
    CHECK(top.value.threads == 256);
    auto one = parse({{"MESA_THREADS", "1"}});
    REQUIRE(one.ok());
    CHECK(one.value.threads == 1);
    CHECK(parse({}).value.threads == gateway::default_threads());
}

TEST_CASE("config: bad values name their variable") {
    struct bad {
        char const* name;
        char const* value;
    };
    for (auto const& b : {bad{"MESA_PORT", "65536"},
                          bad{"MESA_PORT", "-1"},
                          bad{"MESA_PORT", "abc"},
                          bad{"MESA_PORT", ""},
                          bad{"MESA_PORT", " 80"},
                          bad{"MESA_PORT", "+80"},
                          bad{"MESA_PORT", "99999999999999999999"},
                          bad{"HEARTBEAT_INTERVAL", "0"},
                          bad{"HEARTBEAT_INTERVAL", "3600001"},
                          bad{"HEARTBEAT_MAX_ATTEMPTS", "1001"},
                          bad{"RECONNECT_INTERVAL", "1.5"},
                          bad{"AUTH_TIMEOUT", "10s"},
                          bad{"SYNC_REDELIVERY_INTERVAL", "x"},
                          bad{"HEARTBEATS_ENABLED", "yes"},
                          bad{"HEARTBEATS_ENABLED", "TRUE"},
                          bad{"SYNC_ENABLED", "1"},
                          bad{"ENABLE_LOGGING", ""},
                          bad{"PORTALS_ENABLED", "on"},
                          bad{"PORTAL_DISTRIBUTE_LOAD", "False"},
                          bad{"AUTH_REQUIRED", "0"},
                          bad{"MESA_PATH", "ws"},
                          bad{"MESA_PATH", ""},
                          bad{"WS_KEY", ""},
                          bad{"MESA_API_KEY", ""},
                          bad{"REDIS_URI", "http://x"},
                          bad{"REDIS_URI", "redis://host:notaport"},
                          bad{"MESA_THREADS", "0"},
                          bad{"MESA_THREADS", "257"},
                          bad{"MESA_THREADS", "two"}}) {
        CAPTURE(b.name);
        CAPTURE(b.value);
        auto p = parse({{b.name, b.value}});
        CHECK(!p.ok());
        CHECK(mentions(p, b.name));
    }
    auto several = parse({{"MESA_PORT", "x"}, {"AUTH_REQUIRED", "maybe"}});
    CHECK(several.errors.size() == 2);
}

TEST_CASE("config: --help lists every variable with its default") {
    auto help = gateway::help_text();
    for (auto const* name : {"MESA_PORT",
                             "MESA_THREADS",
                             "MESA_PATH",
                             "MESA_NAMESPACE",
                             "REDIS_URI",
                             "ENFORCE_EQUAL_VERSIONS",
                             "STORE_MESSAGES",
                             "SYNC_ENABLED",
                             "SYNC_REDELIVERY_INTERVAL",
                             "SYNC_MAX_BACKLOG",
                             "SYNC_MAX_ATTEMPTS",
                             "PORTALS_ENABLED",
                             "PORTAL_DISTRIBUTE_LOAD",
                             "HEARTBEATS_ENABLED",
                             "HEARTBEAT_INTERVAL",
                             "HEARTBEAT_MAX_ATTEMPTS",
                             "RECONNECTS_ENABLED",
                             "RECONNECT_INTERVAL",
                             "AUTH_TIMEOUT",
                             "AUTH_REQUIRED",
                             "AUTH_SEND_USER_OBJECT",
                             "AUTH_DISCONNECT_ON_FAIL",
                             "AUTH_STORE_CONNECTED_USERS",
                             "ENABLE_LOGGING",
                             "WS_KEY",
                             "MESA_API_KEY",
                             "WS_KEY_FILE",
                             "MESA_API_KEY_FILE",
                             "MESA_TCP_KEEPALIVE",
                             "REDIS_URI_FILE",
                             "REDIS_PASSWORD",
                             "REDIS_PASSWORD_FILE",
                             "REDIS_SENTINELS",
                             "REDIS_SENTINEL_MASTER",
                             "REDIS_SENTINEL_PASSWORD",
                             "REDIS_SENTINEL_PASSWORD_FILE",
                             "REDIS_USERNAME",
                             "REDIS_DB",
                             "REDIS_REPLICAS_TO_ACKNOWLEDGE",
                             "REDIS_REPLICA_TIMEOUT",
                             "REDIS_TLS",
                             "REDIS_TLS_CA",
                             "REDIS_TLS_CERT",
                             "REDIS_TLS_KEY",
                             "REDIS_TLS_SERVER_NAME",
                             "REDIS_TLS_INSECURE",
                             "MESA_ADMIN_PORT",
                             "MESA_ADMIN_HOST",
                             "MESA_READY_GRACE",
                             "MESA_SHUTDOWN_DELAY",
                             "MESA_CGROUP_CPU_MAX",
                             "LOG_FORMAT",
                             "LOG_LEVEL",
                             "NOTIFY_SOCKET"}) {
        CAPTURE(name);
        CHECK(help.find(name) != std::string::npos);
    }
    CHECK(help.find("MESA_PORT (4500)") != std::string::npos);
    CHECK(help.find("HEARTBEAT_INTERVAL (10000)") != std::string::npos);
    CHECK(help.find("MESA_THREADS (CPUs the process may use)") != std::string::npos);
    CHECK(help.find("MESA_READY_GRACE (10000)") != std::string::npos);
    CHECK(help.find("REDIS_SENTINEL_MASTER (mymaster)") != std::string::npos);
    for (auto const& v : gateway::variables()) {
        CAPTURE(v.name);
        CHECK(help.find(std::string("  ") + v.name + " (") != std::string::npos);
    }
}

TEST_CASE("config: Redis Sentinel") {
    auto none = parse({});
    REQUIRE(none.ok());
    CHECK(!none.value.redis());
    CHECK(none.value.redis_sentinel_master == "mymaster");

    temp_file sentinel_password("s-secret\n");
    auto p = parse({{"REDIS_SENTINELS", "10.0.0.1:26379, 10.0.0.2:26380,10.0.0.3"},
                    {"REDIS_SENTINEL_MASTER", "cache"},
                    {"REDIS_SENTINEL_PASSWORD_FILE", sentinel_password.path},
                    {"REDIS_USERNAME", "mesa"},
                    {"REDIS_PASSWORD", "m-secret"},
                    {"REDIS_DB", "3"},
                    {"REDIS_REPLICAS_TO_ACKNOWLEDGE", "1"},
                    {"REDIS_REPLICA_TIMEOUT", "250"}});
    REQUIRE(p.ok());
    CHECK(p.value.redis());
    CHECK(!p.value.redis_uri);
    CHECK(p.value.redis_sentinels == std::vector<std::string>{"10.0.0.1:26379", "10.0.0.2:26380", "10.0.0.3"});
    CHECK(p.value.redis_sentinel_master == "cache");
    CHECK(p.value.redis_sentinel_password == std::string("s-secret"));
    CHECK(p.value.redis_username == std::string("mesa"));
    CHECK(p.value.redis_password == std::string("m-secret"));  // the master's, not the sentinels'
    CHECK(p.value.redis_db == 3);
    CHECK(p.value.redis_replicas_to_acknowledge == 1);
    CHECK(p.value.redis_replica_timeout_ms == 250);

    // With REDIS_URI the password still goes into the URI; replica acknowledgement works there too.
    auto uri = parse({{"REDIS_URI", "redis://h:1"}, {"REDIS_PASSWORD", "x"}, {"REDIS_REPLICAS_TO_ACKNOWLEDGE", "2"}});
    REQUIRE(uri.ok());
    CHECK(uri.value.redis_uri == std::string("redis://:x@h:1"));
    CHECK(!uri.value.redis_password);
    CHECK(uri.value.redis_replicas_to_acknowledge == 2);

    auto both = parse({{"REDIS_SENTINELS", "h:26379"}, {"REDIS_URI", "redis://h:1"}});
    CHECK(mentions(both, "REDIS_SENTINELS"));
    CHECK(mentions(both, "REDIS_URI"));
    CHECK(mentions(parse({{"REDIS_SENTINELS", ","}}), "REDIS_SENTINELS"));
    CHECK(mentions(parse({{"REDIS_SENTINELS", "h:notaport"}}), "REDIS_SENTINELS"));
    CHECK(mentions(parse({{"REDIS_SENTINELS", "h"}, {"REDIS_SENTINEL_MASTER", ""}}), "REDIS_SENTINEL_MASTER"));
    CHECK(mentions(parse({{"REDIS_SENTINEL_MASTER", "m"}}), "REDIS_SENTINEL_MASTER"));
    CHECK(mentions(parse({{"REDIS_SENTINEL_PASSWORD", "p"}}), "REDIS_SENTINEL_PASSWORD"));
    CHECK(mentions(parse({{"REDIS_URI", "redis://h"}, {"REDIS_DB", "1"}}), "REDIS_DB"));
    CHECK(mentions(parse({{"REDIS_URI", "redis://h"}, {"REDIS_USERNAME", "u"}}), "REDIS_USERNAME"));
    CHECK(mentions(parse({{"REDIS_SENTINELS", "h"}, {"REDIS_USERNAME", "u"}}), "REDIS_USERNAME"));  // no password
    CHECK(mentions(parse({{"REDIS_SENTINELS", "h"}, {"REDIS_DB", "-1"}}), "REDIS_DB"));
    CHECK(mentions(parse({{"REDIS_REPLICAS_TO_ACKNOWLEDGE", "x"}}), "REDIS_REPLICAS_TO_ACKNOWLEDGE"));
    CHECK(mentions(parse({{"REDIS_REPLICA_TIMEOUT", "0"}}), "REDIS_REPLICA_TIMEOUT"));
    CHECK(mentions(parse({{"REDIS_PASSWORD", "p"}}), "REDIS_PASSWORD"));
}

TEST_CASE("jwt: a good HS256 token gives its id") {
    auto r = gateway::verify_jwt(mint(R"({"id":"alice","exp":1700000100,"nbf":1699999000})", "k"), "k", now);
    REQUIRE(r);
    CHECK(r.id() == "alice");
    CHECK(r.payload().at("exp").as_int64() == 1700000100);
    CHECK(r.exp() == 1700000100.0);  // the session ends then
    // No exp: valid forever.
    auto forever = gateway::verify_jwt(mint(R"({"id":"bob"})", "k"), "k", now);
    CHECK(forever);
    CHECK(!forever.exp());
    // A token minted by Node (v20), as jsonwebtoken does it (with iat), by:
    //   node -e "const c = require('crypto'), b = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
    //            const i = b({alg: 'HS256', typ: 'JWT'}) + '.' + b({id: 'u1', iat: 1700000000});
    //            console.log(i + '.' + c.createHmac('sha256', 'secret').update(i).digest('base64url'))"
    // (the gateway process tests verify tokens Node mints at run time, test/support/harness.js).
    char const node_made[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6InUxIiwiaWF0IjoxNzAwMDAwMDAwfQ."
        "XpkMjrfOSmrGBdyKX4Z9eWuJ2roXQYiGuHFmvGimbdA";
    CHECK(gateway::verify_jwt(node_made, "secret", now).id() == "u1");
    CHECK(!gateway::verify_jwt(node_made, "other", now));
}

TEST_CASE("jwt: refused tokens") {
    auto const good = mint(R"({"id":"alice"})", "k");
    SUBCASE("bad signature") {
        auto r = gateway::verify_jwt(mint(R"({"id":"alice"})", "other"), "k", now);
        CHECK(!r);
        CHECK(r.error() == "bad signature");
    }
    SUBCASE("payload changed after signing") {
        auto dot = good.find('.');
        auto tampered = good.substr(0, dot + 1) + b64url(R"({"id":"admin"})") + good.substr(good.rfind('.'));
        CHECK(!gateway::verify_jwt(tampered, "k", now));
    }
    SUBCASE("alg none") {
        auto input = b64url(R"({"alg":"none","typ":"JWT"})") + "." + b64url(R"({"id":"alice"})");
        CHECK(!gateway::verify_jwt(input + ".", "k", now));
        // Even with a valid HMAC, alg must say HS256.
        auto r = gateway::verify_jwt(input + "." + sign(input, "k"), "k", now);
        CHECK(!r);
        CHECK(r.error().find("algorithm") != std::string::npos);
    }
    SUBCASE("other algorithms") {
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a"})", "k", R"({"alg":"HS512"})"), "k", now));
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a"})", "k", R"({"alg":"hs256"})"), "k", now));
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a"})", "k", R"({"typ":"JWT"})"), "k", now));
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a"})", "k", R"({"alg":256})"), "k", now));
    }
    SUBCASE("expired and not yet valid") {
        auto r = gateway::verify_jwt(mint(R"({"id":"a","exp":1699999999})", "k"), "k", now);
        CHECK(!r);
        CHECK(r.error() == "token expired");
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a","exp":1700000000})", "k"), "k", now));  // exp is exclusive
        CHECK(gateway::verify_jwt(mint(R"({"id":"a","exp":1700000001})", "k"), "k", now));
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a","nbf":1700000001})", "k"), "k", now));
        CHECK(gateway::verify_jwt(mint(R"({"id":"a","nbf":1700000000})", "k"), "k", now));
        CHECK(!gateway::verify_jwt(mint(R"({"id":"a","exp":"never"})", "k"), "k", now));
    }
    SUBCASE("malformed") {
        for (std::string t :
             {std::string(""), std::string("abc"), std::string("a.b"), std::string("a.b.c.d"), std::string(".."),
              good + "=", good.substr(0, good.size() - 1) + "*",
              b64url("not json") + "." + b64url(R"({"id":"a"})") + ".x", mint("not json", "k"), mint(R"(["id"])", "k"),
              mint(R"({"id":""})", "k"), mint(R"({"id":42})", "k"), mint(R"({"sub":"a"})", "k")}) {
            CAPTURE(t);
            CHECK(!gateway::verify_jwt(t, "k", now));
        }
    }
    SUBCASE("non-canonical base64url") {
        // The last character of a 32-byte signature carries 2 unused bits.
        auto sig_last = good.back();
        std::string twin = good;
        twin.back() = static_cast<char>(sig_last + 1);
        CHECK(!gateway::verify_jwt(twin, "k", now));
    }
}

TEST_CASE("jwt: base64url decoding") {
    using gateway::detail::base64url_decode;
    CHECK(base64url_decode("") == std::string());
    CHECK(base64url_decode("YQ") == std::string("a"));
    CHECK(base64url_decode("YWI") == std::string("ab"));
    CHECK(base64url_decode("YWJj") == std::string("abc"));
    CHECK(base64url_decode("_-8") == std::string("\xff\xef", 2));
    CHECK(!base64url_decode("YQ=="));
    CHECK(!base64url_decode("Y"));
    CHECK(!base64url_decode("YR"));  // non-zero leftover bits
    CHECK(!base64url_decode("a+b/"));
}

namespace {

struct api_fixture {
    std::vector<mesa::envelope> sent;
    gateway::metrics numbers;
    std::optional<std::string> not_ready;
    int latencies = 0;
    gateway::http_api api;

    std::error_code broker_answer;                // what the broker says of each dispatch
    std::vector<std::vector<std::string>> asked;  // presence queries
    struct disconnection {
        std::vector<std::string> ids;
        std::uint16_t code;
        std::string reason;
    };
    std::vector<disconnection> disconnected;

    explicit api_fixture(std::optional<std::string> key, std::string broker = "memory", bool operations_here = true)
        : api({[this](mesa::envelope const& e, mesa::broker::completion done) {
                   if (!broker_answer) sent.push_back(e);
                   done(broker_answer);
               },
               [this] { return numbers; }, [this] { return not_ready; },
               [this](std::chrono::steady_clock::duration) { ++latencies; },
               [this](std::vector<std::string> const& ids, mesa::broker::counts_handler done) {
                   asked.push_back(ids);
                   std::vector<std::int64_t> counts;
                   for (auto const& id : ids) counts.push_back(id == "node" ? -1 : id == "a" ? 2 : 0);
                   done(broker_answer, broker_answer ? std::vector<std::int64_t>{} : counts);
               },
               [this](std::vector<std::string> ids, std::uint16_t code, std::string reason,
                      mesa::broker::completion done) {
                   if (!broker_answer) disconnected.push_back({std::move(ids), code, std::move(reason)});
                   done(broker_answer);
               }},
              std::move(key), std::move(broker), std::make_shared<gateway::http_api::counter>(0), operations_here) {}

    mesa::http_response post(std::string body, std::optional<std::string> auth = std::nullopt,
                             std::string target = "/dispatch") {
        mesa::http_request r{"POST", std::move(target), {}, std::move(body)};
        if (auth) r.headers.emplace_back("authorization", *auth);
        return answer(api, r);
    }
    mesa::http_response get(std::string target, std::optional<std::string> auth = std::nullopt) {
        mesa::http_request r{"GET", std::move(target), {}, {}};
        if (auth) r.headers.emplace_back("Authorization", *auth);
        return answer(api, r);
    }

    /// The response, given at once by `api` (its hooks answer at once).
    static mesa::http_response answer(gateway::http_api& api, mesa::http_request const& r) {
        std::optional<mesa::http_response> response;
        api.handle(r, [&](mesa::http_response res) { response = std::move(res); });
        REQUIRE(response);
        return *response;
    }
};

boost::json::value body_of(mesa::http_response const& r) { return boost::json::parse(r.body); }

}  // namespace

TEST_CASE("http api: check_header refuses from the header section alone: 401, then 413 over the limit") {
    api_fixture f{std::string("s3cret")};
    auto header = [](std::string method, std::string target, std::vector<std::pair<std::string, std::string>> fields) {
        return mesa::http_request{std::move(method), std::move(target), std::move(fields), {}};
    };
    auto const big = std::to_string(gateway::http_api::max_body_bytes + 1);
    for (auto const& [method, target] : std::vector<std::pair<std::string, std::string>>{
             {"POST", "/dispatch"}, {"POST", "/disconnect"}, {"GET", "/presence?id=a"}, {"HEAD", "/presence?id=a"}}) {
        INFO(method << " " << target);
        auto r = f.api.check_header(header(method, target, {{"Content-Length", "30000000"}}));
        REQUIRE(r);
        CHECK(r->status == 401);
        CHECK(std::find(r->headers.begin(), r->headers.end(),
                        std::pair<std::string, std::string>{"WWW-Authenticate", "Bearer"}) != r->headers.end());
        CHECK_FALSE(f.api.check_header(header(method, target, {{"Authorization", "Bearer s3cret"}})));
    }
    auto over =
        f.api.check_header(header("POST", "/dispatch", {{"Authorization", "Bearer s3cret"}, {"Content-Length", big}}));
    REQUIRE(over);
    CHECK(over->status == 413);
    CHECK_FALSE(f.api.check_header(header(
        "POST", "/dispatch",
        {{"Authorization", "Bearer s3cret"}, {"Content-Length", std::to_string(gateway::http_api::max_body_bytes)}})));
    // Other routes are answered by handle(): /health needs no key.
    CHECK_FALSE(f.api.check_header(header("GET", "/health", {})));
    CHECK_FALSE(f.api.check_header(header("GET", "/dispatch", {})));
}

TEST_CASE("http api: HEAD is answered as GET (the transport drops the body)") {
    api_fixture f{std::string("s3cret")};
    for (std::string const target : {"/health", "/ready", "/metrics"}) {
        INFO(target);
        auto head = api_fixture::answer(f.api, {"HEAD", target, {}, {}});
        auto get = f.get(target);
        CHECK(head.status == get.status);
        CHECK(head.headers == get.headers);
    }
    CHECK(api_fixture::answer(f.api, {"HEAD", "/presence?id=a", {{"Authorization", "Bearer s3cret"}}, {}}).status ==
          200);
    auto wrong = f.post("{}", std::nullopt, "/health");
    CHECK(wrong.status == 405);
    CHECK(std::find(wrong.headers.begin(), wrong.headers.end(),
                    std::pair<std::string, std::string>{"Allow", "GET, HEAD"}) != wrong.headers.end());
}

TEST_CASE("http api: GET /presence") {
    api_fixture f("s3cret");
    auto r = f.get("/presence?id=a&id=b&id=node&id=a", "Bearer s3cret");
    CHECK(r.status == 200);
    CHECK(body_of(r) == boost::json::parse(R"({"presence":{"a":{"online":true,"sockets":2},
        "b":{"online":false,"sockets":0},"node":{"online":true,"sockets":null}}})"));
    REQUIRE(f.asked.size() == 1);
    CHECK(f.asked[0] == std::vector<std::string>{"a", "b", "node"});  // each id once
    // Percent-encoded ids.
    f.get("/presence?id=caf%C3%A9&id=a%2Bb+c", "Bearer s3cret");
    CHECK(f.asked.back() == std::vector<std::string>{"caf\xC3\xA9", "a+b c"});

    CHECK(f.get("/presence?id=a").status == 401);
    CHECK(f.get("/presence?id=a", "Bearer wrong").status == 401);
    for (auto bad :
         {"/presence", "/presence?id=", "/presence?user=a", "/presence?id=%zz", "/presence?id=a%2", "/presence?id=*"}) {
        CAPTURE(bad);
        CHECK(f.get(bad, "Bearer s3cret").status == 400);
    }
    std::string many = "/presence?id=0";
    for (int i = 1; i <= 1000; ++i) many += "&id=" + std::to_string(i);
    CHECK(f.get(many, "Bearer s3cret").status == 414);  // 1001 ids
    CHECK(f.get("/presence?id=" + std::string(9000, 'x'), "Bearer s3cret").status == 414);
    CHECK(f.post("", "Bearer s3cret", "/presence").status == 405);
    f.broker_answer = std::make_error_code(std::errc::connection_refused);
    r = f.get("/presence?id=a", "Bearer s3cret");
    CHECK(r.status == 503);
}

TEST_CASE("http api: POST /disconnect") {
    api_fixture f("s3cret");
    auto r = f.post(R"({"ids":["a","b","a"],"code":4100,"reason":"banned"})", "Bearer s3cret", "/disconnect");
    CHECK(r.status == 202);
    CHECK(body_of(r) == boost::json::parse(R"({"status":"accepted","ids":["a","b"]})"));
    REQUIRE(f.disconnected.size() == 1);
    CHECK(f.disconnected[0].ids == std::vector<std::string>{"a", "b"});
    CHECK(f.disconnected[0].code == 4100);
    CHECK(f.disconnected[0].reason == "banned");
    CHECK(f.post(R"({"ids":["a"]})", "Bearer s3cret", "/disconnect").status == 202);
    CHECK(f.disconnected.back().code == 1000);

    CHECK(f.post(R"({"ids":["a"]})", std::nullopt, "/disconnect").status == 401);
    CHECK(f.post(R"({"ids":["a"]})", "Bearer nope", "/disconnect").status == 401);
    for (auto bad :
         {R"({"ids":[]})", R"({"ids":"a"})", R"({"ids":[1]})", R"({"ids":[""]})", R"({"ids":["*"]})", R"({})", R"([])",
          R"({"ids":["a"],"code":4003})", R"({"ids":["a"],"code":1001})", R"({"ids":["a"],"code":"4100"})",
          R"({"ids":["a"],"reason":7})", R"({"ids":["a"],"x":1})", "not json"}) {
        CAPTURE(bad);
        CHECK(f.post(bad, "Bearer s3cret", "/disconnect").status == 400);
    }
    CHECK(
        f.post(R"({"ids":["a"],"reason":")" + std::string(124, 'r') + R"("})", "Bearer s3cret", "/disconnect").status ==
        400);
    std::string many = R"({"ids":["0")";
    for (int i = 1; i <= 1000; ++i) many += ",\"" + std::to_string(i) + "\"";
    CHECK(f.post(many + "]}", "Bearer s3cret", "/disconnect").status == 413);
    CHECK(f.post(std::string(2 << 20, ' '), "Bearer s3cret", "/disconnect").status == 413);
    CHECK(f.get("/disconnect", "Bearer s3cret").status == 405);
    CHECK(f.disconnected.size() == 2);  // no refused request reached the cluster
    f.broker_answer = std::make_error_code(std::errc::connection_refused);
    CHECK(f.post(R"({"ids":["a"]})", "Bearer s3cret", "/disconnect").status == 503);
}

TEST_CASE("http api: dispatch") {
    api_fixture f("s3cret");
    auto r = f.post(R"({"message":{"t":"NEW","d":{"x":1}},"recipients":["a","b"],"excluding":["b"]})", "Bearer s3cret");
    CHECK(r.status == 202);
    REQUIRE(f.sent.size() == 1);
    CHECK(f.sent[0].msg.op == 0);
    CHECK(f.sent[0].msg.t == std::string("NEW"));
    CHECK(f.sent[0].msg.d.at("x").as_int64() == 1);
    CHECK(f.sent[0].recipients == std::vector<std::string>{"a", "b"});
    CHECK(f.sent[0].excluding == std::vector<std::string>{"b"});
    CHECK(body_of(r).at("status") == "accepted");

    CHECK(f.post(R"({"message":{"d":{}}})", "Bearer s3cret").status == 202);
    CHECK(f.sent.back().recipients == std::vector<std::string>{"*"});
    CHECK(f.api.dispatches() == 2);
    CHECK(f.post(R"({"message":{"op":5,"t":"DISCONNECT_CLIENT","d":{}},"recipients":["a"]})", "Bearer s3cret").status ==
          202);

    // Unauthorized.
    CHECK(f.post(R"({"message":{"d":{}}})").status == 401);
    CHECK(f.post(R"({"message":{"d":{}}})", "Bearer wrong!").status == 401);
    CHECK(f.post(R"({"message":{"d":{}}})", "s3cret").status == 401);
    CHECK(f.post(R"({"message":{"d":{}}})", "Basic s3cret").status == 401);
    CHECK(f.sent.size() == 3);

    // Bad shapes: 400 with an error message.
    for (auto const* bad :
         {"", "not json", "[]", "{}", R"({"message":1})", R"({"message":{"d":[]}})", R"({"message":{"t":5,"d":{}}})",
          R"({"message":{"op":1,"d":{}}})", R"({"message":{"op":"0","d":{}}})", R"({"message":{"d":{},"s":3}})",
          R"({"message":{"d":{}},"recipients":"a"})", R"({"message":{"d":{}},"recipients":[]})",
          R"({"message":{"d":{}},"recipients":[1]})", R"({"message":{"d":{}},"excluding":{}})",
          R"({"message":{"d":{}},"extra":1})"}) {
        CAPTURE(bad);
        auto res = f.post(bad, "Bearer s3cret");
        CHECK(res.status == 400);
        CHECK(body_of(res).at("error").is_string());
    }
    CHECK(f.sent.size() == 3);
}

TEST_CASE("http api: the Bearer scheme is case-insensitive and may be followed by several spaces (RFC 9110 §11)") {
    api_fixture f("s3cret");
    for (auto const* auth : {"bearer s3cret", "BEARER s3cret", "Bearer   s3cret", "bEaReR  s3cret"}) {
        CAPTURE(auth);
        CHECK(f.post(R"({"message":{"d":{}}})", std::string(auth)).status == 202);
    }
    for (auto const* auth :
         {"Bearers3cret", "Bearer", "Bearer ", "Bearer s3cret ", "Bearer\ts3cret", "Bearerx s3cret", "bearer S3CRET"}) {
        CAPTURE(auth);
        CHECK(f.post(R"({"message":{"d":{}}})", std::string(auth)).status == 401);
    }
    CHECK(f.get("/presence?id=a", "bearer s3cret").status == 200);
}

TEST_CASE("http api: check_header's 413 is reported to on_refused_header, its 401 not") {
    std::vector<int> refused;
    api_fixture f{std::string("s3cret")};
    auto& api = f.api;
    api.on_refused_header([&](int status) { refused.push_back(status); });
    auto const big = std::to_string(gateway::http_api::max_body_bytes + 1);
    REQUIRE(api.check_header({"POST", "/dispatch", {{"Authorization", "Bearer s3cret"}, {"Content-Length", big}}, {}}));
    REQUIRE(api.check_header({"POST", "/dispatch", {{"Content-Length", big}}, {}}));
    CHECK(refused == std::vector<int>{413});
    gateway::shared_counters counters;
    counters.http_refused(413);  // what the gateway's hook does
    gateway::metrics m;
    counters.read(m);
    CHECK(m.refused_http_requests == std::vector<std::pair<std::string, std::uint64_t>>{{"413", 1}});
}

TEST_CASE("http api: 202 only once the broker took the message, 503 when it did not, recipients once") {
    api_fixture f(std::nullopt);
    f.broker_answer = std::make_error_code(std::errc::not_connected);
    auto refused = f.post(R"({"message":{"d":{}},"recipients":["a"]})");
    CHECK(refused.status == 503);
    CHECK(body_of(refused).at("error").is_string());
    CHECK(std::find(refused.headers.begin(), refused.headers.end(),
                    std::pair<std::string, std::string>{"Retry-After", "1"}) != refused.headers.end());
    CHECK(f.api.dispatches() == 0);
    // Every broker error is a 503: no master known to the sentinels, a store no replica acknowledged.
    for (auto ec : {make_error_code(mesa::broker::redis_errc::master_unknown),
                    make_error_code(mesa::broker::redis_errc::not_replicated)}) {
        CAPTURE(ec.message());
        f.broker_answer = ec;
        auto r = f.post(R"({"message":{"d":{}},"recipients":["a"]})");
        CHECK(r.status == 503);
        CHECK(r.body.find(ec.message()) != std::string::npos);
    }
    CHECK(f.api.dispatches() == 0);
    f.broker_answer = {};
    auto r = f.post(R"({"message":{"d":{}},"recipients":["a","b","a"]})");
    CHECK(r.status == 202);
    REQUIRE(f.sent.size() == 1);
    CHECK(f.sent[0].recipients == std::vector<std::string>{"a", "b"});
    CHECK(f.post(R"({"message":{"d":{}},"recipients":["a","*"]})").status == 202);
    CHECK(f.sent.back().recipients == std::vector<std::string>{"*"});
}

TEST_CASE("http api: without a key anyone may dispatch") {
    api_fixture f(std::nullopt);
    CHECK(f.post(R"({"message":{"d":{}}})").status == 202);
    CHECK(f.post(R"({"message":{"d":{}}})", "Bearer whatever").status == 202);
}

TEST_CASE("http api: routes, methods, health, metrics") {
    api_fixture f(std::nullopt, "redis");
    CHECK(f.get("/nope").status == 404);
    CHECK(f.get("/dispatch").status == 405);
    CHECK(f.post("{}", std::nullopt, "/health").status == 405);
    CHECK(f.post("{}", std::nullopt, "/metrics").status == 405);

    f.numbers.connections_open = 3;
    f.numbers.authenticated_clients = 2;
    f.numbers.broker_connected = false;
    auto h = f.get("/health?verbose=1");
    CHECK(h.status == 200);
    auto hb = body_of(h);
    CHECK(hb.at("connections").as_int64() == 3);
    CHECK(hb.at("authenticated").as_int64() == 2);
    CHECK(hb.at("redis") == false);
    CHECK(hb.at("status") == "degraded");

    f.post(R"({"message":{"d":{}}})");
    auto m = f.get("/metrics");
    CHECK(m.status == 200);
    CHECK(m.body.find("# TYPE mesa_open_connections gauge\nmesa_open_connections 3\n") != std::string::npos);
    CHECK(m.body.find("mesa_authenticated_clients 2\n") != std::string::npos);
    CHECK(m.body.find("mesa_http_dispatches_total 1\n") != std::string::npos);
    CHECK(m.body.find("mesa_broker_connected 0\n") != std::string::npos);
    CHECK(m.body.find("# HELP mesa_sync_stored_messages_total") != std::string::npos);
    CHECK(f.latencies == 1);

    api_fixture memory(std::nullopt);
    auto mb = body_of(memory.get("/health"));
    CHECK(mb.at("status") == "ok");
    CHECK(!mb.as_object().contains("redis"));
}

TEST_CASE("session variables: AUTH_EXPIRY_GRACE") {
    CHECK(parse({}).value.auth_expiry_grace_ms == 0);
    auto parsed = parse({{"AUTH_EXPIRY_GRACE", "1500"}});
    CHECK(parsed.errors.empty());
    CHECK(parsed.value.auth_expiry_grace_ms == 1500);
    parsed = parse({{"AUTH_EXPIRY_GRACE", "-1"}});
    REQUIRE(parsed.errors.size() == 1);
    CHECK(parsed.errors[0].find("AUTH_EXPIRY_GRACE") != std::string::npos);
}

TEST_CASE("limit variables: defaults, values and refusals") {
    auto parsed = parse({});
    CHECK(parsed.value.max_backlog_bytes == 1048576);
    CHECK(parsed.value.max_connections == 100000);
    CHECK(parsed.value.allowed_origins.empty());
    CHECK(parsed.value.max_messages_per_second == 50);
    CHECK(parsed.value.tcp_keepalive_s == 60);
    CHECK(parse({{"MESA_TCP_KEEPALIVE", "0"}}).value.tcp_keepalive_s == 0);
    CHECK(parse({{"MESA_TCP_KEEPALIVE", "32767"}}).value.tcp_keepalive_s == 32767);
    CHECK(mentions(parse({{"MESA_TCP_KEEPALIVE", "32768"}}), "MESA_TCP_KEEPALIVE"));
    parsed = parse({{"MESA_MAX_BACKLOG", "4096"},
                    {"MESA_MAX_CONNECTIONS", "10"},
                    {"MESA_ALLOWED_ORIGINS", "https://a.example,https://b.example"},
                    {"MESA_MAX_MESSAGES_PER_SECOND", "0"}});
    CHECK(parsed.errors.empty());
    CHECK(parsed.value.max_backlog_bytes == 4096);
    CHECK(parsed.value.max_connections == 10);
    CHECK(parsed.value.allowed_origins == std::vector<std::string>{"https://a.example", "https://b.example"});
    CHECK(parsed.value.max_messages_per_second == 0);
    parsed = parse({{"MESA_MAX_BACKLOG", "-1"}, {"MESA_ALLOWED_ORIGINS", ","}, {"MESA_MESSAGE_BURST", "0"}});
    REQUIRE(parsed.errors.size() == 3);
    CHECK(parsed.errors[0].find("MESA_MAX_BACKLOG") != std::string::npos);
    // Blanks around an Origin are not part of it; blanks alone are no Origin.
    parsed = parse({{"MESA_ALLOWED_ORIGINS", " https://a.example , https://b.example"}});
    CHECK(parsed.value.allowed_origins == std::vector<std::string>{"https://a.example", "https://b.example"});
    CHECK(mentions(parse({{"MESA_ALLOWED_ORIGINS", ", ,"}}), "MESA_ALLOWED_ORIGINS"));
}

TEST_CASE("metrics: the numbers of several instances add up, open connections also by instance") {
    std::vector<gateway::published_metrics> instances(2);  // as the gateway's shared state holds them
    auto& first = instances[0];
    auto& second = instances[1];
    gateway::metrics a;
    a.connections_open = 3;
    a.authenticated_clients = 1;
    a.messages_sent = 10;
    a.sync_redelivered = 2;
    gateway::metrics b;
    b.connections_open = 4;
    b.messages_sent = 5;
    first.store(a);
    second.store(b);

    auto total = gateway::total_of(instances);
    CHECK(total.connections_open == 7);
    CHECK(total.authenticated_clients == 1);
    CHECK(total.messages_sent == 15);
    CHECK(total.sync_redelivered == 2);
    CHECK(total.broker_connected);
    auto text = gateway::render_prometheus(total);
    CHECK(text.find("mesa_open_connections 7\n") != std::string::npos);
    CHECK(text.find("# TYPE mesa_worker_open_connections gauge\n"
                    "mesa_worker_open_connections{worker=\"0\"} 3\n"
                    "mesa_worker_open_connections{worker=\"1\"} 4\n") != std::string::npos);
    CHECK(text.find("instance=") == std::string::npos);

    // One instance without its broker makes the gateway's broker count as down.
    b.broker_connected = false;
    second.store(b);
    CHECK(!gateway::total_of(instances).broker_connected);
}

TEST_CASE("http api: instances sharing a dispatch counter each report the gateway's total") {
    auto shared = std::make_shared<gateway::http_api::counter>(0);
    auto taken = [](mesa::envelope const&, mesa::broker::completion done) { done({}); };
    gateway::http_api first({taken, {}, {}, {}}, std::nullopt, "memory", shared);
    gateway::http_api second({taken, {}, {}, {}}, std::nullopt, "memory", shared);
    mesa::http_request post{"POST", "/dispatch", {}, R"({"message":{"d":{}}})"};
    CHECK(api_fixture::answer(first, post).status == 202);
    CHECK(api_fixture::answer(second, post).status == 202);
    CHECK(api_fixture::answer(second, post).status == 202);
    CHECK(first.dispatches() == 3);
    CHECK(api_fixture::answer(first, {"GET", "/metrics", {}, {}}).body.find("mesa_http_dispatches_total 3\n") !=
          std::string::npos);
}

TEST_CASE("http api: /ready says why not; an admin listener takes /health, /ready and /metrics away") {
    api_fixture f(std::nullopt);
    auto r = f.get("/ready");
    CHECK(r.status == 200);
    CHECK(body_of(r).at("status") == "ready");
    f.not_ready = "shutting down";
    r = f.get("/ready");
    CHECK(r.status == 503);
    CHECK(body_of(r).at("status") == "not ready");
    CHECK(body_of(r).at("reason") == "shutting down");
    CHECK(f.post("{}", std::nullopt, "/ready").status == 405);

    api_fixture split(std::nullopt, "memory", false);
    for (auto const* path : {"/health", "/ready", "/metrics"}) {
        CAPTURE(path);
        CHECK(split.get(path).status == 404);
        CHECK(split.api.operations({"GET", path, {}, {}}).status == 200);
    }
    CHECK(split.api.operations({"GET", "/dispatch", {}, {}}).status == 404);
    CHECK(split.api.operations({"POST", "/metrics", {}, {}}).status == 405);
    CHECK(split.post(R"({"message":{"d":{}}})").status == 202);
}

TEST_CASE("metrics: Prometheus names, build info, closes by code, refusals by status, dispatch latency") {
    gateway::shared_counters counters;
    for (std::uint16_t code : {1000, 1000, 1001, 1011, 4000, 4005, 4006, 3000, 1012, 1015}) counters.closed(code);
    counters.refused(404);
    counters.refused(503);
    counters.refused(503);
    counters.refused(418);
    counters.http_refused(413);
    counters.http_refused(501);
    counters.http_refused(505);
    counters.broker_reconnected();
    counters.dispatch_latency(std::chrono::microseconds(300));  // <= 0.0005
    counters.dispatch_latency(std::chrono::milliseconds(30));   // <= 0.05
    counters.dispatch_latency(std::chrono::seconds(20));        // +Inf only
    gateway::metrics m;
    m.version = "1.2.3";
    counters.read(m);
    auto text = gateway::render_prometheus(m);
    CAPTURE(text);
    CHECK(text.find("# TYPE mesa_build_info gauge\nmesa_build_info{version=\"1.2.3\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_closes_total{code=\"1000\"} 2\n") != std::string::npos);
    CHECK(text.find("mesa_closes_total{code=\"1001\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_closes_total{code=\"1011\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_closes_total{code=\"4000\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_closes_total{code=\"4005\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_closes_total{code=\"other\"} 4\n") != std::string::npos);
    CHECK(text.find("code=\"4006\"") == std::string::npos);
    CHECK(text.find("mesa_refused_upgrades_total{status=\"404\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_refused_upgrades_total{status=\"503\"} 2\n") != std::string::npos);
    CHECK(text.find("mesa_refused_upgrades_total{status=\"other\"} 1\n") != std::string::npos);
    // Plain HTTP requests the transport refused: a series of their own.
    CHECK(text.find("# TYPE mesa_refused_http_requests_total counter\n") != std::string::npos);
    CHECK(text.find("mesa_refused_http_requests_total{status=\"413\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_refused_http_requests_total{status=\"501\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_refused_http_requests_total{status=\"other\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_refused_upgrades_total{status=\"413\"}") == std::string::npos);
    CHECK(text.find("mesa_broker_reconnects_total 1\n") != std::string::npos);
    CHECK(text.find("# TYPE mesa_dispatch_broker_seconds histogram\n") != std::string::npos);
    CHECK(text.find("mesa_dispatch_broker_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
    CHECK(text.find("mesa_dispatch_broker_seconds_bucket{le=\"0.05\"} 2\n") != std::string::npos);
    CHECK(text.find("mesa_dispatch_broker_seconds_bucket{le=\"10\"} 2\n") != std::string::npos);
    CHECK(text.find("mesa_dispatch_broker_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
    CHECK(text.find("mesa_dispatch_broker_seconds_count 3\n") != std::string::npos);
    CHECK(text.find("mesa_dispatch_broker_seconds_sum 20.030300\n") != std::string::npos);
    for (auto const* name : {"mesa_received_bytes_total", "mesa_sent_bytes_total", "mesa_received_messages_total",
                             "mesa_sent_messages_total", "mesa_accepted_connections_total"}) {
        CAPTURE(name);
        CHECK(text.find(std::string("# TYPE ") + name + " counter\n") != std::string::npos);
    }
}

TEST_CASE("notify: one datagram to a path or an abstract name; nothing without NOTIFY_SOCKET") {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string const name = "@mesa-gateway-unit-" + std::to_string(::getpid());
    std::memcpy(a.sun_path, name.data(), name.size());
    a.sun_path[0] = '\0';
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + name.size()) == 0);
    CHECK(!gateway::notify_to(name, "READY=1"));
    char buffer[64] = {};
    auto n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    CHECK(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0) == "READY=1");
    ::close(fd);
    CHECK(gateway::notify_to("relative", "READY=1"));
    CHECK(gateway::notify_to("@mesa-gateway-unit-nobody-listens", "READY=1"));
    ::unsetenv("NOTIFY_SOCKET");
    CHECK(!gateway::notify("READY=1"));
}

TEST_CASE("config: Redis over TLS (rediss://, REDIS_TLS, REDIS_TLS_*)") {
    temp_file ca("ca"), cert("cert"), key("key");
    auto plain = parse({{"REDIS_URI", "redis://h:6379"}});
    REQUIRE(plain.ok());
    CHECK(!plain.value.redis_tls);

    auto tls = parse({{"REDIS_URI", "rediss://:pw@redis.example.com:6380"},
                      {"REDIS_TLS_CA", ca.path},
                      {"REDIS_TLS_CERT", cert.path},
                      {"REDIS_TLS_KEY", key.path},
                      {"REDIS_TLS_SERVER_NAME", "redis.internal"}});
    REQUIRE(tls.ok());
    CHECK(tls.value.redis_tls);
    CHECK(tls.value.redis_tls_ca == ca.path);
    CHECK(tls.value.redis_tls_cert == cert.path);
    CHECK(tls.value.redis_tls_key == key.path);
    CHECK(tls.value.redis_tls_server_name == "redis.internal");
    CHECK(!tls.value.redis_tls_insecure);

    // REDIS_TLS=true: TLS to the sentinels and their master.
    auto sentinels =
        parse({{"REDIS_SENTINELS", "10.0.0.1:26379"}, {"REDIS_TLS", "true"}, {"REDIS_TLS_INSECURE", "true"}});
    REQUIRE(sentinels.ok());
    CHECK(sentinels.value.redis_tls);
    CHECK(sentinels.value.redis_tls_insecure);

    CHECK(mentions(parse({{"REDIS_URI", "redis://h"}, {"REDIS_TLS_CA", ca.path}}), "REDIS_TLS_CA"));
    CHECK(mentions(parse({{"REDIS_URI", "redis://h"}, {"REDIS_TLS_INSECURE", "true"}}), "REDIS_TLS_INSECURE"));
    CHECK(mentions(parse({{"REDIS_URI", "rediss://h"}, {"REDIS_TLS_CERT", cert.path}}), "REDIS_TLS_CERT"));
    CHECK(mentions(parse({{"REDIS_URI", "rediss://h"}, {"REDIS_TLS_CA", "/nonexistent/ca.pem"}}), "REDIS_TLS_CA"));
    CHECK(mentions(parse({{"REDIS_URI", "rediss://h"}, {"REDIS_TLS_INSECURE", "maybe"}}), "REDIS_TLS_INSECURE"));
    CHECK(mentions(parse({{"REDIS_TLS", "true"}}), "REDIS_TLS"));
    CHECK(mentions(parse({{"REDIS_URI", "rediss://h"}, {"REDIS_TLS", "false"}}), "REDIS_TLS"));  // contradicts
    // Replica settings mean nothing on the in-memory broker.
    CHECK(mentions(parse({{"REDIS_REPLICAS_TO_ACKNOWLEDGE", "2"}}), "REDIS_REPLICAS_TO_ACKNOWLEDGE"));
    CHECK(mentions(parse({{"REDIS_REPLICA_TIMEOUT", "100"}}), "REDIS_REPLICA_TIMEOUT"));
}

TEST_CASE("http api: Idempotency-Key on POST /dispatch: 202, then 200 with the first body, 409 in flight, 400") {
    api_fixture f("s3cret");
    // Stands in for the broker's claim: the first send of a key records its result.
    std::map<std::string, std::string> taken;
    std::set<std::string> in_flight{"busy"};
    std::vector<std::string> keys;
    f.api.on_dispatch_once([&](mesa::envelope const& e, std::string key, std::string result, mesa::send_handler done) {
        keys.push_back(key);
        if (in_flight.count(key)) return done({}, {mesa::send_outcome::in_flight, {}});
        if (auto it = taken.find(key); it != taken.end()) return done({}, {mesa::send_outcome::replayed, it->second});
        if (f.broker_answer) return done(f.broker_answer, {});
        f.sent.push_back(e);
        taken[key] = result;
        done({}, {mesa::send_outcome::sent, result});
    });
    auto post = [&](std::string body, std::vector<std::string> const& values) {
        mesa::http_request r{"POST", "/dispatch", {{"Authorization", "Bearer s3cret"}}, std::move(body)};
        for (auto const& v : values) r.headers.emplace_back("idempotency-KEY", v);
        return api_fixture::answer(f.api, r);
    };
    auto header = [](mesa::http_response const& r, std::string const& name) -> std::optional<std::string> {
        for (auto const& [k, v] : r.headers)
            if (k == name) return v;
        return std::nullopt;
    };
    auto const body = R"({"message":{"d":{}},"recipients":["a","b","a"]})";
    auto first = post(body, {"k-1"});
    CHECK(first.status == 202);
    CHECK(body_of(first) == boost::json::parse(R"({"status":"accepted","recipients":["a","b"]})"));
    CHECK_FALSE(header(first, "Idempotent-Replayed"));
    auto again = post(R"({"message":{"d":{}},"recipients":["c"]})", {"\"k-1\""});  // quoted: the same key
    CHECK(again.status == 200);
    CHECK(again.body == first.body);
    CHECK(header(again, "Idempotent-Replayed") == std::string("true"));
    auto busy = post(body, {"busy"});
    CHECK(busy.status == 409);
    CHECK(header(busy, "Retry-After") == std::string("1"));
    CHECK(f.sent.size() == 1);
    CHECK(f.api.dispatches() == 1);  // replays and refusals are not accepted dispatches

    // Refused by the broker: 503, and the hint says a retry is safe.
    f.broker_answer = make_error_code(mesa::broker::redis_errc::not_replicated);
    auto unconfirmed = post(body, {"k-2"});
    CHECK(unconfirmed.status == 503);
    CHECK(unconfirmed.body.find("Idempotency-Key") != std::string::npos);
    f.broker_answer = {};

    // Bad keys, two keys, a bad body or API key: refused before the hook.
    keys.clear();
    for (auto const& bad : {std::string(), std::string(256, 'k'), std::string("a b"), std::string("a\"b"),
                            std::string("a\\b"), std::string("caf\xC3\xA9"), std::string("\"\"")}) {
        CAPTURE(bad);
        auto r = post(body, {bad});
        CHECK(r.status == 400);
        CHECK(body_of(r).at("error").as_string().find("Idempotency-Key") != std::string::npos);
    }
    CHECK(post(body, {"k-3", "k-4"}).status == 400);
    CHECK(post("not json", {"k-3"}).status == 400);
    mesa::http_request unauthorized{"POST", "/dispatch", {{"Idempotency-Key", "k-3"}}, body};
    CHECK(api_fixture::answer(f.api, unauthorized).status == 401);
    CHECK(keys.empty());
    CHECK(post(body, {std::string(255, 'k')}).status == 202);

    // A gateway without the hook refuses the header rather than sending without it.
    api_fixture plain(std::nullopt);
    mesa::http_request keyed{"POST", "/dispatch", {{"Idempotency-Key", "k"}}, body};
    CHECK(api_fixture::answer(plain.api, keyed).status == 404);
    CHECK(plain.sent.empty());
}
