// wss:// over real sockets: a mesa server on transport::websocketpp_tls, with
// websocketpp TLS clients and our mesa::tls_client, all on one io_context
// driven by the test thread.
// Certificates are generated at test time with the `openssl` command (path in
// $OPENSSL, else from PATH) in a temporary directory removed afterwards.
#include <mesa/transport/websocketpp_tls.hpp>  // first: proves it is self-contained

#include <doctest/doctest.h>

#include <mesa/client_tls.hpp>
#include <mesa/mesa.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>

#include <asio/ssl/host_name_verification.hpp>

#include "../support/ws_test_client.hpp"

#include "../support/gateway_config.hpp"  // the gateway's TLS_* variables

#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace std::chrono_literals;
using mesa_test::run_for;
using mesa_test::wait_until;
namespace fs = std::filesystem;
namespace json = boost::json;

using tls_server = mesa::server<mesa::transport::websocketpp_tls, mesa::broker::memory>;

/// A temporary directory with throwaway self-signed certificates (EC P-256):
/// `cert` and an unrelated `other` for 127.0.0.1 and localhost, and
/// `elsewhere` for the name elsewhere.example only.
struct certificates {
    fs::path dir;
    fs::path cert, key, other_cert, other_key, elsewhere_cert, elsewhere_key;

    certificates() {
        std::string pattern = (fs::temp_directory_path() / "mesa-tls-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        dir = pattern;
        cert = dir / "cert.pem";
        key = dir / "key.pem";
        other_cert = dir / "other-cert.pem";
        other_key = dir / "other-key.pem";
        generate(cert, key, "mesa-test-server");
        generate(other_cert, other_key, "mesa-test-other");
        elsewhere_cert = dir / "elsewhere-cert.pem";
        elsewhere_key = dir / "elsewhere-key.pem";
        generate(elsewhere_cert, elsewhere_key, "mesa-test-elsewhere", "DNS:elsewhere.example");
    }
    ~certificates() {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    }

    static void generate(fs::path const& c, fs::path const& k, std::string const& cn,
                         std::string const& names = "IP:127.0.0.1,DNS:localhost") {
        char const* openssl = std::getenv("OPENSSL");
        std::string cmd = std::string(openssl && *openssl ? openssl : "openssl") +
                          " req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
                          " -subj /CN=" +
                          cn + " -addext subjectAltName=" + names + " -keyout '" + k.string() + "' -out '" +
                          c.string() + "' 2>/dev/null";
        REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "cannot generate a certificate with: " << cmd);
        REQUIRE(fs::exists(c));
        REQUIRE(fs::exists(k));
    }
};

certificates& certs() {
    static certificates c;
    return c;
}

/// One wss:// connection from websocketpp's TLS client, verifying the server
/// against `ca` (and its name, 127.0.0.1), optionally presenting a client
/// certificate.
class wss_client {
public:
    using endpoint_type = websocketpp::client<websocketpp::config::asio_tls_client>;
    using connection_ptr = endpoint_type::connection_ptr;

    wss_client(asio::io_context& ioc, fs::path ca, std::optional<std::pair<fs::path, fs::path>> own = {}) : ioc_(ioc) {
        endpoint_.clear_access_channels(websocketpp::log::alevel::all);
        endpoint_.clear_error_channels(websocketpp::log::elevel::all);
        endpoint_.init_asio(&ioc);
        endpoint_.set_tls_init_handler([ca, own](websocketpp::connection_hdl) {
            auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
            ctx->set_verify_mode(asio::ssl::verify_peer);
            ctx->load_verify_file(ca.string());
            ctx->set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
            if (own) {
                ctx->use_certificate_chain_file(own->first.string());
                ctx->use_private_key_file(own->second.string(), asio::ssl::context::pem);
            }
            return ctx;
        });
    }
    wss_client(wss_client const&) = delete;
    wss_client& operator=(wss_client const&) = delete;
    ~wss_client() {
        if (!con_) return;
        websocketpp::lib::error_code ec;
        if (opened && !closed) {
            con_->close(websocketpp::close::status::normal, "test over", ec);
            wait_until(
                ioc_, [&] { return closed; }, 1000ms);
        } else if (!opened && !failed) {
            con_->terminate(ec);
            wait_until(
                ioc_, [&] { return closed || failed; }, 1000ms);
        }
        con_->set_open_handler(nullptr);
        con_->set_fail_handler(nullptr);
        con_->set_close_handler(nullptr);
        con_->set_message_handler(nullptr);
    }

    /// True once the handshake (TLS then WebSocket) succeeded.
    bool connect_and_wait(std::uint16_t port) {
        websocketpp::lib::error_code ec;
        con_ = endpoint_.get_connection("wss://127.0.0.1:" + std::to_string(port) + "/", ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        con_->set_open_handler([this](websocketpp::connection_hdl) { opened = true; });
        con_->set_fail_handler([this](websocketpp::connection_hdl) {
            failed = true;
            fail_reason = con_->get_ec().message();
        });
        con_->set_close_handler([this](websocketpp::connection_hdl) { closed = true; });
        con_->set_message_handler([this](websocketpp::connection_hdl, endpoint_type::message_ptr msg) {
            texts.push_back(msg->get_payload());
        });
        endpoint_.connect(con_);
        wait_until(
            ioc_, [&] { return opened || failed || closed; }, 5000ms);
        return opened && !closed;
    }

    void send_text(std::string const& payload) {
        websocketpp::lib::error_code ec = con_->send(payload, websocketpp::frame::opcode::text);
        REQUIRE_MESSAGE(!ec, ec.message());
    }
    bool wait_texts(std::size_t n) {
        return wait_until(
            ioc_, [&] { return texts.size() >= n; }, 3000ms);
    }

    bool opened = false, failed = false, closed = false;
    std::string fail_reason;
    std::vector<std::string> texts;

private:
    asio::io_context& ioc_;
    endpoint_type endpoint_;
    connection_ptr con_;
};

/// A TLS server on a free port answering PING with PONG.
template <class Server>
struct basic_harness {
    asio::io_context ioc;
    typename Server::options options;
    std::unique_ptr<Server> server;
    std::size_t connections = 0;

    basic_harness() {
        options.port = 0;
        options.transport.certificate_chain_file = certs().cert.string();
        options.transport.private_key_file = certs().key.string();
    }
    Server& start() {
        server = std::make_unique<Server>(ioc, options);
        server->on_connection([this](auto const&) { ++connections; });
        server->on_message([](auto const& client, mesa::message const& m) {
            if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
        });
        server->start();
        REQUIRE(server->port() != 0);
        return *server;
    }
    ~basic_harness() {
        if (!server) return;
        server->stop();
        wait_until(
            ioc, [&] { return server->clients().empty(); }, 1000ms);
        run_for(ioc, 20ms);
    }
};

using harness = basic_harness<tls_server>;

json::object frame(std::string const& text) { return json::parse(text).as_object(); }

/// Hello first, then a PONG with the PING's data.
void check_hello_and_echo(harness& h, wss_client& c) {
    REQUIRE(c.wait_texts(1));
    CHECK(frame(c.texts[0])["op"].as_int64() == 10);
    c.send_text(mesa::serialize(mesa::message("PING", json::object{{"n", 7}})));
    REQUIRE(c.wait_texts(2));
    auto pong = frame(c.texts[1]);
    CHECK(pong["op"].as_int64() == 0);
    CHECK(pong["t"].as_string() == "PONG");
    CHECK(pong["d"] == json::value(json::object{{"n", 7}}));
    (void)h;
}

/// What start() throws for `options`, or "" when it does not throw.
template <class Exception>
std::string start_error(tls_server::options options) {
    asio::io_context ioc;
    options.port = 0;
    tls_server s{ioc, options};
    try {
        s.start();
    } catch (Exception const& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("tls: the transport meets the transport requirements; plain keeps empty options") {
    static_assert(mesa::transport::check<mesa::transport::websocketpp_tls>());
    static_assert(mesa::transport::check<mesa::transport::websocketpp_plain>());
    static_assert(std::is_empty_v<mesa::transport::websocketpp_plain::options>);
    CHECK(std::string(mesa::transport::websocketpp_tls::scheme) == "wss");
    CHECK(std::string(mesa::transport::websocketpp_plain::scheme) == "ws");
}

TEST_CASE("tls: a verifying wss:// client gets the hello and PING/PONG") {
    harness h;
    h.start();
    wss_client c(h.ioc, certs().cert);
    REQUIRE_MESSAGE(c.connect_and_wait(h.server->port()), c.fail_reason);
    check_hello_and_echo(h, c);
    CHECK(h.connections == 1);
}

TEST_CASE("tls: a client that does not trust the certificate is refused; the server keeps serving") {
    harness h;
    h.start();
    {
        wss_client stranger(h.ioc, certs().other_cert);
        CHECK_FALSE(stranger.connect_and_wait(h.server->port()));
        CHECK(stranger.failed);
    }
    wss_client c(h.ioc, certs().cert);
    REQUIRE_MESSAGE(c.connect_and_wait(h.server->port()), c.fail_reason);
    check_hello_and_echo(h, c);
    CHECK(h.connections == 1);
}

TEST_CASE("tls: a plain ws:// client cannot connect to the TLS port") {
    harness h;
    h.start();
    {
        mesa_test::ws_client plain(h.ioc);
        plain.connect(h.server->port());
        CHECK(plain.wait_failed(5000ms));
        CHECK_FALSE(plain.opened);
    }
    CHECK(h.connections == 0);
    wss_client c(h.ioc, certs().cert);
    REQUIRE_MESSAGE(c.connect_and_wait(h.server->port()), c.fail_reason);
    check_hello_and_echo(h, c);
}

TEST_CASE("tls: with ca_file, only clients presenting a certificate it signed connect") {
    harness h;
    h.options.transport.ca_file = certs().cert.string();  // self-signed: its own CA
    h.start();
    {
        wss_client anonymous(h.ioc, certs().cert);
        CHECK_FALSE(anonymous.connect_and_wait(h.server->port()));
    }
    {
        wss_client foreign(h.ioc, certs().cert, std::pair{certs().other_cert, certs().other_key});
        CHECK_FALSE(foreign.connect_and_wait(h.server->port()));
    }
    CHECK(h.connections == 0);
    wss_client c(h.ioc, certs().cert, std::pair{certs().cert, certs().key});
    REQUIRE_MESSAGE(c.connect_and_wait(h.server->port()), c.fail_reason);
    check_hello_and_echo(h, c);
}

TEST_CASE("tls: unusable files make start() throw, naming the file") {
    tls_server::options good;
    good.transport.certificate_chain_file = certs().cert.string();
    good.transport.private_key_file = certs().key.string();
    auto const missing = (certs().dir / "missing.pem").string();

    SUBCASE("missing certificate chain") {
        auto o = good;
        o.transport.certificate_chain_file = missing;
        auto what = start_error<std::system_error>(o);
        CHECK(what.find(missing) != std::string::npos);
        CHECK(what.find("certificate_chain_file") != std::string::npos);
    }
    SUBCASE("missing private key") {
        auto o = good;
        o.transport.private_key_file = missing;
        auto what = start_error<std::system_error>(o);
        CHECK(what.find(missing) != std::string::npos);
        CHECK(what.find("private_key_file") != std::string::npos);
    }
    SUBCASE("missing CA") {
        auto o = good;
        o.transport.ca_file = missing;
        CHECK(start_error<std::system_error>(o).find(missing) != std::string::npos);
    }
    SUBCASE("a file that is not PEM") {
        auto const junk = (certs().dir / "junk.pem").string();
        std::ofstream(junk) << "not a certificate\n";
        auto o = good;
        o.transport.certificate_chain_file = junk;
        CHECK(start_error<std::system_error>(o).find(junk) != std::string::npos);
    }
    SUBCASE("a key that does not match the certificate") {
        auto o = good;
        o.transport.private_key_file = certs().other_key.string();
        // OpenSSL notices while loading the key ("key values mismatch").
        CHECK(start_error<std::exception>(o).find(certs().other_key.string()) != std::string::npos);
    }
    SUBCASE("no paths at all") {
        CHECK(start_error<std::invalid_argument>(tls_server::options{}).find("certificate_chain_file") !=
              std::string::npos);
    }
}

TEST_CASE("tls: nothing is bound when start() throws") {
    asio::io_context ioc;
    tls_server::options o;
    o.port = 0;
    o.transport.certificate_chain_file = "/nonexistent/cert.pem";
    o.transport.private_key_file = certs().key.string();
    tls_server s{ioc, o};
    CHECK_THROWS_AS(s.start(), std::system_error);
    CHECK(s.port() == 0);
}

// ---- mesa::tls_client (<mesa/client_tls.hpp>) ------------------------------

namespace {

/// A TLS server with 50 ms heartbeats: the hello carries c_heartbeat_interval
/// and op 1 / op 11 cross the TLS connection in both directions.
using beating_tls_server = mesa::server<mesa::transport::websocketpp_tls, mesa::broker::memory, mesa::heartbeat>;

struct beating_harness : basic_harness<beating_tls_server> {
    beating_harness() {
        options.feature<mesa::heartbeat>().interval = 50ms;
        options.feature<mesa::heartbeat>().max_attempts = 5;  // answers are counted, not timed
    }
};

/// What a mesa::tls_client reported.
struct events {
    std::vector<mesa::tls_client::error> errors;
    std::vector<mesa::tls_client::disconnection> disconnected;
    std::vector<mesa::message> messages;
    std::size_t connected = 0;

    explicit events(mesa::tls_client& c) {
        c.on_connected([this](auto const&) { ++connected; });
        c.on_disconnected([this](auto const& d) { disconnected.push_back(d); });
        c.on_error([this](auto const& e) { errors.push_back(e); });
        c.on_message([this](auto const& m) { messages.push_back(m); });
    }
    std::string first_error() const { return errors.empty() ? std::string("no error") : errors[0].what; }
};

std::string wss_url(std::string const& host, std::uint16_t port) {
    return "wss://" + host + ":" + std::to_string(port) + "/";
}

mesa::tls_client::options trusting(fs::path const& ca) {
    mesa::tls_client::options o;
    o.tls.ca_file = ca.string();
    return o;
}

/// Waits for the open or the first error; true when the client connected.
bool wait_connected(asio::io_context& ioc, mesa::tls_client& c, events const& e) {
    wait_until(
        ioc, [&] { return c.connected() || !e.errors.empty(); }, 5000ms);
    return c.connected();
}

/// PING {n: 7} answered by PONG {n: 7}, over the client's connection.
void check_echo(asio::io_context& ioc, mesa::tls_client& c, events& e) {
    CHECK(c.send(mesa::message("PING", json::object{{"n", 7}})) == mesa::tls_client::send_status::sent);
    REQUIRE(wait_until(ioc, [&] { return !e.messages.empty(); }));
    CHECK(*e.messages[0].t == "PONG");
    CHECK(e.messages[0].d == json::object{{"n", 7}});
}

/// Lets the close handshake finish before the harness stops the server.
void settle(asio::io_context& ioc, mesa::tls_client& c) {
    c.disconnect();
    wait_until(
        ioc, [&] { return !c.connected(); }, 1000ms);
    run_for(ioc, 20ms);
}

/// A client with options `o` connects to the harness's server (its only
/// connection) and gets PING answered.
void check_connects_and_echoes(harness& h, mesa::tls_client::options const& o) {
    mesa::tls_client c{h.ioc, wss_url("127.0.0.1", h.server->port()), o};
    events e{c};
    REQUIRE_MESSAGE(wait_connected(h.ioc, c, e), e.first_error());
    check_echo(h.ioc, c, e);
    CHECK(h.connections == 1);
    settle(h.ioc, c);
}

/// A refused handshake: one connection_failed error naming the reason, no
/// open, no close event, no reconnection without a hello asking for one.
void check_refused(asio::io_context& ioc, mesa::tls_client& c, events const& e, std::string const& reason) {
    CHECK_FALSE(wait_connected(ioc, c, e));
    REQUIRE(e.errors.size() == 1);
    CHECK(e.errors[0].kind == mesa::tls_client::error_kind::connection_failed);
    CHECK_MESSAGE(e.errors[0].what.find("cannot connect to " + c.url()) == 0, e.errors[0].what);
    CHECK_MESSAGE(e.errors[0].what.find(reason) != std::string::npos, e.errors[0].what);
    CHECK(e.connected == 0);
    CHECK(e.disconnected.empty());
    CHECK_FALSE(c.reconnecting());
}

}  // namespace

TEST_CASE("tls client: trusting the test CA, it gets the hello, heartbeats and PING/PONG over wss://") {
    beating_harness h;
    h.start();
    std::string host;
    SUBCASE("by IP address") { host = "127.0.0.1"; }
    SUBCASE("by DNS name") { host = "localhost"; }
    mesa::tls_client c{h.ioc, wss_url(host, h.server->port()), trusting(certs().cert)};
    events e{c};
    REQUIRE_MESSAGE(wait_connected(h.ioc, c, e), e.first_error());
    REQUIRE(wait_until(h.ioc, [&] { return c.heartbeat_interval().has_value(); }));
    CHECK(*c.heartbeat_interval() == 50ms);
    // Several beats answered: the server reads that many op 11 (the client sends nothing else meanwhile).
    auto const before = h.server->stats().messages_received;
    REQUIRE(wait_until(
        h.ioc, [&] { return h.server->stats().messages_received >= before + 5; }, 10000ms));
    CHECK(c.connected());
    CHECK(e.disconnected.empty());
    check_echo(h.ioc, c, e);
    CHECK(e.errors.empty());
    CHECK(h.connections == 1);
    settle(h.ioc, c);
}

TEST_CASE("tls client: verification is on by default; a certificate outside the trust store is refused") {
    harness h;
    h.start();
    {
        // No ca_file: the system's trust store, which does not hold the test certificate.
        mesa::tls_client c{h.ioc, wss_url("127.0.0.1", h.server->port())};
        events e{c};
        check_refused(h.ioc, c, e, "certificate verification failed: self-signed certificate");
        CHECK(e.errors[0].what.find("set tls.ca_file") != std::string::npos);
    }
    {
        // A ca_file that holds another CA refuses it too.
        mesa::tls_client c{h.ioc, wss_url("127.0.0.1", h.server->port()), trusting(certs().other_cert)};
        events e{c};
        check_refused(h.ioc, c, e, "not signed by a CA of tls.ca_file");
    }
    CHECK(h.connections == 0);
    // The server keeps serving clients that trust it.
    mesa::tls_client c{h.ioc, wss_url("127.0.0.1", h.server->port()), trusting(certs().cert)};
    events e{c};
    REQUIRE_MESSAGE(wait_connected(h.ioc, c, e), e.first_error());
    settle(h.ioc, c);
}

TEST_CASE("tls client: a trusted certificate for another host name is refused") {
    harness h;
    h.options.transport.certificate_chain_file = certs().elsewhere_cert.string();
    h.options.transport.private_key_file = certs().elsewhere_key.string();
    h.start();
    std::string host;
    SUBCASE("by IP address") { host = "127.0.0.1"; }
    SUBCASE("by DNS name") { host = "localhost"; }
    mesa::tls_client c{h.ioc, wss_url(host, h.server->port()), trusting(certs().elsewhere_cert)};
    events e{c};
    check_refused(h.ioc, c, e, "the server's certificate is not valid for the host name " + host);
    CHECK(h.connections == 0);
}

TEST_CASE("tls client: reconnection attempts after a refused certificate are refused and reported too") {
    harness h;
    h.start();
    auto o = trusting(certs().other_cert);
    o.fallback_reconnect_interval = 20ms;
    mesa::tls_client c{h.ioc, wss_url("127.0.0.1", h.server->port()), o};
    events e{c};
    REQUIRE(wait_until(
        h.ioc, [&] { return e.errors.size() >= 3; }, 5000ms));
    for (auto const& error : e.errors) {
        CHECK(error.kind == mesa::tls_client::error_kind::connection_failed);
        CHECK_MESSAGE(error.what.find("certificate verification failed") != std::string::npos, error.what);
    }
    CHECK(e.connected == 0);
    CHECK(h.connections == 0);
    c.disconnect();
}

TEST_CASE("tls client: with verify_peer false it connects to a certificate it cannot verify") {
    harness h;
    // Untrusted and for another name: both checks are off.
    h.options.transport.certificate_chain_file = certs().elsewhere_cert.string();
    h.options.transport.private_key_file = certs().elsewhere_key.string();
    h.start();
    mesa::tls_client::options o;
    o.tls.verify_peer = false;
    check_connects_and_echoes(h, o);
}

TEST_CASE("tls client: presents its certificate to a server that requires one") {
    harness h;
    h.options.transport.ca_file = certs().cert.string();  // self-signed: its own CA
    h.start();
    {
        mesa::tls_client anonymous{h.ioc, wss_url("127.0.0.1", h.server->port()), trusting(certs().cert)};
        events e{anonymous};
        CHECK_FALSE(wait_connected(h.ioc, anonymous, e));
        REQUIRE(e.errors.size() == 1);
        CHECK(e.errors[0].kind == mesa::tls_client::error_kind::connection_failed);
        CHECK(e.connected == 0);
    }
    CHECK(h.connections == 0);
    auto o = trusting(certs().cert);
    o.tls.certificate_chain_file = certs().cert.string();
    o.tls.private_key_file = certs().key.string();
    check_connects_and_echoes(h, o);
}

TEST_CASE("tls client: wrong schemes and unusable TLS options throw at construction, naming the problem") {
    asio::io_context ioc;
    auto const url = wss_url("127.0.0.1", 1);
    auto const missing = (certs().dir / "missing.pem").string();

    CHECK_THROWS_WITH_AS(mesa::tls_client(ioc, "ws://127.0.0.1:1/"), doctest::Contains("use mesa::client for ws://"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(mesa::client(ioc, url),
                         doctest::Contains("wss:// needs TLS: include <mesa/client_tls.hpp> and use mesa::tls_client"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(mesa::tls_client(ioc, "https://127.0.0.1:1/"), doctest::Contains("not a wss:// URL"),
                         std::invalid_argument);
    CHECK_NOTHROW(mesa::tls_client(ioc, url));

    SUBCASE("missing ca_file") {
        CHECK_THROWS_WITH_AS(mesa::tls_client(ioc, url, trusting(missing)),
                             doctest::Contains(("tls.ca_file '" + missing + "'").c_str()), std::system_error);
    }
    SUBCASE("a ca_file that is not PEM") {
        auto const junk = (certs().dir / "junk-ca.pem").string();
        std::ofstream(junk) << "not a certificate\n";
        CHECK_THROWS_WITH_AS(mesa::tls_client(ioc, url, trusting(junk)), doctest::Contains(junk.c_str()),
                             std::system_error);
    }
    SUBCASE("a certificate without its key") {
        mesa::tls_client::options o;
        o.tls.certificate_chain_file = certs().cert.string();
        CHECK_THROWS_WITH_AS(mesa::tls_client(ioc, url, o), doctest::Contains("both or neither"),
                             std::invalid_argument);
    }
    SUBCASE("a key that does not match the certificate") {
        mesa::tls_client::options o;
        o.tls.certificate_chain_file = certs().cert.string();
        o.tls.private_key_file = certs().other_key.string();
        CHECK_THROWS_WITH_AS(mesa::tls_client(ioc, url, o), doctest::Contains(certs().other_key.string().c_str()),
                             std::exception);
    }
}

// ---- the gateway's TLS_* variables (examples/gateway/config.hpp) -----------

namespace {

gateway::parsed_config parse(mesa::test::env_map const& env) { return mesa::test::parse_gateway_config(env); }
using mesa::test::mentions;

}  // namespace

TEST_CASE("tls: gateway TLS_CERT/TLS_KEY/TLS_CA: both or neither, readable files") {
    auto const cert = certs().cert.string(), key = certs().key.string();
    auto const missing = (certs().dir / "missing.pem").string();

    auto plain = parse({});
    REQUIRE(plain.ok());
    CHECK_FALSE(plain.value.tls());

    auto tls = parse({{"TLS_CERT", cert}, {"TLS_KEY", key}});
    REQUIRE(tls.ok());
    CHECK(tls.value.tls());
    CHECK(*tls.value.tls_cert == cert);
    CHECK(*tls.value.tls_key == key);
    CHECK_FALSE(tls.value.tls_ca);

    auto with_ca = parse({{"TLS_CERT", cert}, {"TLS_KEY", key}, {"TLS_CA", cert}});
    REQUIRE(with_ca.ok());
    CHECK(*with_ca.value.tls_ca == cert);

    auto only_cert = parse({{"TLS_CERT", cert}});
    CHECK_FALSE(only_cert.ok());
    CHECK(mentions(only_cert, "TLS_KEY"));

    auto only_key = parse({{"TLS_KEY", key}});
    CHECK_FALSE(only_key.ok());
    CHECK(mentions(only_key, "TLS_CERT"));

    auto unreadable = parse({{"TLS_CERT", missing}, {"TLS_KEY", key}});
    CHECK_FALSE(unreadable.ok());
    CHECK(mentions(unreadable, "TLS_CERT=\"" + missing + "\""));

    auto bad_ca = parse({{"TLS_CERT", cert}, {"TLS_KEY", key}, {"TLS_CA", missing}});
    CHECK_FALSE(bad_ca.ok());
    CHECK(mentions(bad_ca, "TLS_CA"));

    auto ca_alone = parse({{"TLS_CA", cert}});
    CHECK_FALSE(ca_alone.ok());
    CHECK(mentions(ca_alone, "TLS_CA"));

    auto empty = parse({{"TLS_CERT", ""}, {"TLS_KEY", key}});
    CHECK_FALSE(empty.ok());
    CHECK(mentions(empty, "TLS_CERT"));

    auto help = gateway::help_text();
    for (char const* name : {"TLS_CERT", "TLS_KEY", "TLS_CA"}) CHECK(help.find(name) != std::string::npos);
}
