// wss:// over real sockets: a mesa server on each TLS transport (asio_tls,
// websocketpp_tls), with websocketpp TLS clients, raw TLS peers speaking
// RFC 6455 frames, and our mesa::tls_client, all on one io_context driven by
// the test thread.
// Certificates are generated at test time with the `openssl` command (path in
// $OPENSSL, else from PATH) in a temporary directory removed afterwards.
#include <mesa/transport/asio_tls.hpp>  // first: proves it is self-contained

#include <mesa/transport/websocketpp_tls.hpp>

#include <doctest/doctest.h>

#include <mesa/client_tls.hpp>
#include <mesa/mesa.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>

#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>

#include "../support/ws_test_client.hpp"
#include "../support/ws_wire.hpp"

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

using namespace mesa_test::wire;

#define MESA_TLS_TRANSPORTS mesa::transport::asio_tls, mesa::transport::websocketpp_tls

template <class Transport>
using tls_server = mesa::server<Transport, mesa::broker::memory>;

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
    std::vector<std::string> errors;
    std::vector<std::uint16_t> disconnections;  // the codes reported

    basic_harness() {
        options.port = 0;
        options.transport.certificate_chain_file = certs().cert.string();
        options.transport.private_key_file = certs().key.string();
    }
    Server& start() {
        server = std::make_unique<Server>(ioc, options);
        server->on_connection([this](auto const&) { ++connections; });
        server->on_error([this](auto const& e) { errors.push_back(e.what); });
        server->on_disconnection(
            [this](auto const&, std::uint16_t code, std::string const&) { disconnections.push_back(code); });
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

/// A TLS server on `Transport` (asio_tls: the gateway's).
template <class Transport = mesa::transport::asio_tls>
using harness = basic_harness<tls_server<Transport>>;

json::object frame(std::string const& text) { return json::parse(text).as_object(); }

/// Hello first, then a PONG with the PING's data.
template <class Harness>
void check_hello_and_echo(Harness& h, wss_client& c) {
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
template <class Exception, class Server>
std::string start_error(typename Server::options options) {
    asio::io_context ioc;
    options.port = 0;
    Server s{ioc, options};
    try {
        s.start();
    } catch (Exception const& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("tls: the transports meet the transport requirements; plain keeps empty options") {
    static_assert(mesa::transport::check<mesa::transport::asio_tls>());
    static_assert(mesa::transport::check<mesa::transport::websocketpp_tls>());
    static_assert(mesa::transport::check<mesa::transport::websocketpp_plain>());
    static_assert(std::is_empty_v<mesa::transport::websocketpp_plain::options>);
    CHECK(std::string(mesa::transport::websocketpp_tls::scheme) == "wss");
    CHECK(std::string(mesa::transport::asio_tls::scheme) == "wss");
    CHECK(std::string(mesa::transport::websocketpp_plain::scheme) == "ws");
}

TEST_CASE_TEMPLATE("tls: a verifying wss:// client gets the hello and PING/PONG", Transport, MESA_TLS_TRANSPORTS) {
    harness<Transport> h;
    h.start();
    wss_client c(h.ioc, certs().cert);
    REQUIRE_MESSAGE(c.connect_and_wait(h.server->port()), c.fail_reason);
    check_hello_and_echo(h, c);
    CHECK(h.connections == 1);
}

TEST_CASE_TEMPLATE("tls: a client that does not trust the certificate is refused; the server keeps serving", Transport,
                   MESA_TLS_TRANSPORTS) {
    harness<Transport> h;
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

TEST_CASE_TEMPLATE("tls: a plain ws:// client cannot connect to the TLS port", Transport, MESA_TLS_TRANSPORTS) {
    harness<Transport> h;
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

TEST_CASE_TEMPLATE("tls: with ca_file, only clients presenting a certificate it signed connect", Transport,
                   MESA_TLS_TRANSPORTS) {
    harness<Transport> h;
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

TEST_CASE_TEMPLATE("tls: unusable files make start() throw, naming the file", Transport, MESA_TLS_TRANSPORTS) {
    typename tls_server<Transport>::options good;
    good.transport.certificate_chain_file = certs().cert.string();
    good.transport.private_key_file = certs().key.string();
    auto const missing = (certs().dir / "missing.pem").string();

    SUBCASE("missing certificate chain") {
        auto o = good;
        o.transport.certificate_chain_file = missing;
        auto what = start_error<std::system_error, tls_server<Transport>>(o);
        CHECK(what.find(missing) != std::string::npos);
        CHECK(what.find("certificate_chain_file") != std::string::npos);
    }
    SUBCASE("missing private key") {
        auto o = good;
        o.transport.private_key_file = missing;
        auto what = start_error<std::system_error, tls_server<Transport>>(o);
        CHECK(what.find(missing) != std::string::npos);
        CHECK(what.find("private_key_file") != std::string::npos);
    }
    SUBCASE("missing CA") {
        auto o = good;
        o.transport.ca_file = missing;
        CHECK(start_error<std::system_error, tls_server<Transport>>(o).find(missing) != std::string::npos);
    }
    SUBCASE("a file that is not PEM") {
        auto const junk = (certs().dir / "junk.pem").string();
        std::ofstream(junk) << "not a certificate\n";
        auto o = good;
        o.transport.certificate_chain_file = junk;
        CHECK(start_error<std::system_error, tls_server<Transport>>(o).find(junk) != std::string::npos);
    }
    SUBCASE("a key that does not match the certificate") {
        auto o = good;
        o.transport.private_key_file = certs().other_key.string();
        // OpenSSL notices while loading the key ("key values mismatch").
        CHECK(start_error<std::exception, tls_server<Transport>>(o).find(certs().other_key.string()) !=
              std::string::npos);
    }
    SUBCASE("no paths at all") {
        CHECK(start_error<std::invalid_argument, tls_server<Transport>>({}).find("certificate_chain_file") !=
              std::string::npos);
    }
}

TEST_CASE_TEMPLATE("tls: nothing is bound when start() throws", Transport, MESA_TLS_TRANSPORTS) {
    asio::io_context ioc;
    typename tls_server<Transport>::options o;
    o.port = 0;
    o.transport.certificate_chain_file = "/nonexistent/cert.pem";
    o.transport.private_key_file = certs().key.string();
    tls_server<Transport> s{ioc, o};
    CHECK_THROWS_AS(s.start(), std::system_error);
    CHECK(s.port() == 0);
}

// ---- RFC 6455 and the TLS handshake, over raw TLS peers ----------------------

namespace {

/// One raw exchange over TLS (no verification): connects, completes the TLS
/// handshake, writes `request` as is and reads everything until the server
/// ends the connection.
class raw_tls {
public:
    explicit raw_tls(asio::io_context& ioc)
        : ioc_(ioc), context_(asio::ssl::context::tls_client), stream_(ioc, context_), pause_(ioc) {}
    raw_tls(raw_tls const&) = delete;
    raw_tls& operator=(raw_tls const&) = delete;
    ~raw_tls() {
        if (!started_ || done) return;
        std::error_code ignored;
        stream_.lowest_layer().close(ignored);
        wait_until(
            ioc_, [&] { return done; }, 1000ms);
    }

    /// Presents this certificate to a server that asks for one.
    void present(fs::path const& cert, fs::path const& key) {
        REQUIRE(SSL_use_certificate_chain_file(stream_.native_handle(), cert.c_str()) == 1);
        REQUIRE(SSL_use_PrivateKey_file(stream_.native_handle(), key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    /// Offers to resume `s` (a session of an earlier connection).
    void offer(SSL_SESSION* s) { SSL_set_session(stream_.native_handle(), s); }

    void start(std::uint16_t port, std::string request) {
        started_ = true;
        request_ = std::move(request);
        asio::ip::tcp::endpoint const ep(asio::ip::make_address("127.0.0.1"), port);
        stream_.lowest_layer().async_connect(ep, [this](std::error_code ec) {
            if (ec) return finish(ec);
            stream_.async_handshake(asio::ssl::stream_base::client, [this](std::error_code ec) {
                if (ec) return finish(ec);
                handshaken = true;
                resumed = SSL_session_reused(stream_.native_handle()) == 1;
                asio::async_write(stream_, asio::buffer(request_), [this](std::error_code ec, std::size_t) {
                    if (ec) return finish(ec);
                    // A reader that waits lets the server's writes fill the socket.
                    pause_.expires_after(read_delay);
                    pause_.async_wait([this](std::error_code) { read_more(); });
                });
            });
        });
    }

    std::chrono::milliseconds read_delay{0};  // from the request written to the first read
    bool handshaken = false;
    bool resumed = false;                  // the server resumed the offered session
    std::shared_ptr<SSL_SESSION> session;  // once done: the session to offer next time
    bool done = false;
    std::error_code error;
    std::string response;  // everything received, decrypted

private:
    void read_more() {
        stream_.async_read_some(asio::buffer(buffer_), [this](std::error_code ec, std::size_t n) {
            response.append(buffer_, n);
            if (ec == asio::error::eof) {  // the server's close_notify: answered, as a TLS peer does
                return stream_.async_shutdown([this, ec](std::error_code) { finish(ec); });
            }
            if (ec) return finish(ec);
            read_more();
        });
    }
    void finish(std::error_code ec) {
        error = ec;
        done = true;
        if (handshaken) session.reset(SSL_get1_session(stream_.native_handle()), SSL_SESSION_free);
        std::error_code ignored;
        stream_.lowest_layer().close(ignored);
    }

    asio::io_context& ioc_;
    asio::ssl::context context_;
    asio::ssl::stream<asio::ip::tcp::socket> stream_;
    asio::steady_timer pause_;
    bool started_ = false;
    std::string request_;
    char buffer_[16384];
};

/// Upgrades over TLS with `frames` right behind the request and returns
/// what the server sent until it ended the connection.
template <class Harness>
std::string upgrade_with(Harness& h, std::string const& frames, std::chrono::milliseconds read_delay = {}) {
    raw_tls peer{h.ioc};
    peer.read_delay = read_delay;
    peer.start(h.server->port(), "GET / HTTP/1.1\r\n" + upgrade_headers + "\r\n" + frames);
    CHECK(wait_until(
        h.ioc, [&] { return peer.done; }, 20000ms));
    CHECK(peer.handshaken);
    return peer.response;
}

template <class Harness>
void echo_pings(Harness& h) {
    h.server->on_message([](auto const& client, mesa::message const& m) {
        if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
    });
}

/// A plain TCP peer: sends `bytes` and reads until the server closes.
template <class Harness>
mesa_test::raw_http& plain_peer(Harness& h, mesa_test::raw_http& peer, std::string const& bytes) {
    peer.start(h.server->port(), bytes);
    return peer;
}

}  // namespace

TEST_CASE_TEMPLATE("tls: RFC 6455 frames over TLS, each case on a fresh connection", Transport, MESA_TLS_TRANSPORTS) {
    harness<Transport> h;
    h.options.max_frame_bytes = 1024;
    h.start();
    echo_pings(h);
    std::string const ping_text = R"({"op":0,"t":"PING","d":{"n":1}})";
    constexpr bool is_asio = std::is_same_v<Transport, mesa::transport::asio_tls>;
    // websocketpp_tls reports a close whose TLS shutdown the peer does not
    // answer only when its own shutdown timer (5 s) ends it.
    auto const report_wait = is_asio ? 3000ms : 12000ms;

    SUBCASE("pipelined after the request: a fragmented message with a ping inside, then a close") {
        auto frames = server_frames(
            upgrade_with(h, client_frame(0x01, ping_text.substr(0, 10)) + client_frame(0x89, "are you there") +
                                client_frame(0x00, ping_text.substr(10, 5)) + client_frame(0x80, ping_text.substr(15)) +
                                client_frame(0x88, close_payload(1000))));
        std::vector<int> opcodes;
        for (auto const& f : frames) opcodes.push_back(f.opcode);
        REQUIRE(opcodes == std::vector<int>{1, 10, 1, 8});  // hello, pong, PONG, close
        CHECK(frames[1].payload == "are you there");
        CHECK(frames[3].close_code() == 1000);
        REQUIRE(wait_until(
            h.ioc, [&] { return h.disconnections.size() == 1; }, report_wait));
        CHECK(h.disconnections[0] == 1000);
    }
    for (auto const& c : frame_refusals()) {
        if (c.asio_only && !is_asio) continue;
        SUBCASE(c.name) {
            auto frames = server_frames(upgrade_with(h, c.frames));
            REQUIRE(frames.size() >= 2);
            CHECK(frames.front().opcode == 1);  // the hello
            CHECK(frames.back().opcode == 8);
            CHECK(frames.back().close_code() == c.code);
            REQUIRE(wait_until(
                h.ioc, [&] { return h.disconnections.size() == 1; }, report_wait));
            CHECK(h.disconnections[0] == c.code);
            CHECK_FALSE(h.errors.empty());
        }
    }
}

TEST_CASE_TEMPLATE("tls: with ca_file, a client reconnecting resumes its TLS session", Transport, MESA_TLS_TRANSPORTS) {
    harness<Transport> h;
    h.options.transport.ca_file = certs().cert.string();  // self-signed: its own CA
    h.start();
    std::string const request =
        "GET / HTTP/1.1\r\n" + upgrade_headers + "\r\n" + client_frame(0x88, close_payload(1000));
    raw_tls first{h.ioc};
    first.present(certs().cert, certs().key);
    first.start(h.server->port(), request);
    REQUIRE(wait_until(
        h.ioc, [&] { return first.done; }, 5000ms));
    REQUIRE(first.handshaken);
    REQUIRE(first.session);
    raw_tls second{h.ioc};
    second.present(certs().cert, certs().key);
    second.offer(first.session.get());
    second.start(h.server->port(), request);
    REQUIRE(wait_until(
        h.ioc, [&] { return second.done; }, 5000ms));
    // Without a session id context, OpenSSL refuses any resumption on a
    // server that verifies its clients (SSL_R_SESSION_ID_CONTEXT_UNINITIALIZED).
    CHECK(second.handshaken);
    CHECK(second.resumed);
    CHECK(h.connections == 2);
}

TEST_CASE("tls: asio_tls carries 1 MiB frames each way, across many TLS records, whole and in order") {
    harness<> h;
    h.options.max_backlog_bytes = 16u << 20;  // the PONGs wait for the reader, not 4002
    h.start();
    echo_pings(h);
    // PINGs of almost max_frame_bytes (1 MiB) each, answered by PONGs as
    // large: 8 MiB, more than the socket buffers hold while the peer is
    // still writing, so the server's TLS writes wait for the reader.
    std::string const filler(1024 * 1024 - 64, 'x');
    std::string pings;
    for (int n = 0; n < 8; ++n) {
        std::string const text =
            R"({"op":0,"t":"PING","d":{"n":)" + std::to_string(n) + R"(,"s":")" + filler + R"("}})";
        REQUIRE(text.size() <= 1024 * 1024);
        pings += client_frame(0x81, text);
    }
    auto frames = server_frames(upgrade_with(h, pings + client_frame(0x88, close_payload(1000, "done"))));
    REQUIRE(frames.size() == 10);  // hello, 8 PONGs, close
    for (int n = 0; n < 8; ++n) {
        auto const& pong = frames[1 + n];
        CHECK(pong.opcode == 1);
        CHECK(pong.payload.find(filler) != std::string::npos);
        CHECK(pong.payload.find(R"("n":)" + std::to_string(n) + ",") != std::string::npos);
    }
    CHECK(frames[9].close_code() == 1000);
    REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == 1; }));
    CHECK(h.disconnections[0] == 1000);
}

TEST_CASE("tls: asio_tls delivers a burst of small frames whole and in order to a reader that waits") {
    harness<> h;
    h.options.max_backlog_bytes = 64u << 20;
    h.start();
    // 20 000 frames of about 800 bytes (16 MB) at once, joined into 16 KiB
    // TLS records; the peer reads nothing for 300 ms, so writes block with
    // records only partly sent, and must go on with the same bytes.
    constexpr int count = 20000;
    std::string const filler(760, 'y');
    h.server->on_message([&](auto const& client, mesa::message const&) {
        for (int n = 0; n < count; ++n) client->send(mesa::message("BURST", json::object{{"n", n}, {"s", filler}}));
    });
    auto frames = server_frames(upgrade_with(
        h, client_frame(0x81, R"({"op":0,"t":"GO","d":{}})") + client_frame(0x88, close_payload(1000)), 300ms));
    REQUIRE(frames.size() == count + 2);  // hello, the burst, close
    int in_order = 0;                     // the frames before the first one out of place
    while (in_order < count && frames[1 + in_order].opcode == 1 &&
           json::parse(frames[1 + in_order].payload).at("d").at("n") == in_order)
        ++in_order;
    CHECK(in_order == count);
    CHECK(frames.back().close_code() == 1000);
}

TEST_CASE("tls: asio_tls refuses malformed upgrades over TLS as over TCP, in the documented order") {
    harness<> h;
    h.options.path = "/ws";
    h.options.allowed_origins = {"https://good.example"};
    h.start();
    auto const without = [](std::string const& line) {
        std::string headers = upgrade_headers;
        return headers.erase(headers.find(line), line.size());
    };
    std::string const version = "Sec-WebSocket-Version: 13\r\n";
    std::string const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    struct refusal {
        std::string request;
        int status;
    };
    std::vector<refusal> const cases = {
        {"GET /ws HTTP/1.1\r\n" + without(version) + "\r\n", 426},
        {"GET /ws HTTP/1.1\r\n" + without(key) + "Sec-WebSocket-Key: abc\r\n\r\n", 400},
        {"POST /ws HTTP/1.1\r\n" + upgrade_headers + "\r\n", 400},
        {"GET /ws HTTP/1.1\r\n" + upgrade_headers + "X-Big: " + std::string(10000, 'b') + "\r\n\r\n", 431},
        {"GET /other HTTP/1.1\r\n" + without(version) + "\r\n", 404},  // the path first
        {"GET /ws HTTP/1.1\r\n" + upgrade_headers + "Origin: https://evil.example\r\n\r\n", 403},
    };
    for (auto const& c : cases) {
        raw_tls peer{h.ioc};
        peer.start(h.server->port(), c.request);
        REQUIRE(wait_until(
            h.ioc, [&] { return peer.done; }, 5000ms));
        CHECK(peer.handshaken);
        INFO(peer.response.substr(0, 40));
        CHECK(peer.response.rfind("HTTP/1.1 " + std::to_string(c.status) + " ", 0) == 0);
    }
    CHECK(h.errors.size() == cases.size());
    CHECK(h.connections == 0);
}

TEST_CASE("tls: asio_tls answers a plain HTTP request with 400 in clear, at once, and reports it") {
    // As nginx on its HTTPS ports: the peer learns why (RFC 9110 §15.5.1),
    // whatever its method, and from its first byte.
    harness<> h;
    h.options.transport.handshake_timeout = 3000ms;
    h.options.transport.close_timeout = 300ms;  // the linger after the response
    h.start();
    struct input {
        std::string bytes;
        bool body;  // none for HEAD (RFC 9110 §9.3.2)
    };
    std::vector<input> const inputs = {
        {"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + upgrade_headers + "\r\n", true},
        {"POST /dispatch HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'x'), true},
        {"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"get / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GE", true},
        {"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", false},
    };
    std::size_t refused = 0;
    for (auto const& in : inputs) {
        INFO(in.bytes.substr(0, 40));
        mesa_test::raw_http peer{h.ioc};
        plain_peer(h, peer, in.bytes);
        // At once: well before handshake_timeout.
        REQUIRE(wait_until(
            h.ioc, [&] { return peer.done; }, 2000ms));
        INFO(peer.response.substr(0, 200));
        CHECK(peer.status() == 400);
        CHECK(peer.response.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK((peer.body() == "This port speaks TLS: use https:// or wss://\n") == in.body);
        if (!in.body) CHECK(peer.body().empty());
        ++refused;
        REQUIRE(wait_until(h.ioc, [&] { return h.errors.size() == refused; }));
        CHECK_MESSAGE(h.errors.back().find("refused with 400: plain HTTP sent to the TLS port") != std::string::npos,
                      h.errors.back());
    }
    CHECK(h.connections == 0);
}

TEST_CASE("tls: asio_tls closes a client stalling in the TLS handshake at handshake_timeout") {
    harness<> h;
    h.options.transport.handshake_timeout = 300ms;
    h.start();
    mesa_test::raw_http mute{h.ioc}, stalled{h.ioc};
    plain_peer(h, mute, "");
    // The first bytes of a ClientHello record, and nothing more.
    plain_peer(h, stalled, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
    auto const started = std::chrono::steady_clock::now();
    REQUIRE(wait_until(
        h.ioc, [&] { return mute.done && stalled.done; }, 3000ms));
    CHECK(std::chrono::steady_clock::now() - started >= 250ms);
    CHECK(mute.response.empty());
    CHECK(stalled.response.empty());
    // The server still serves.
    wss_client c(h.ioc, certs().cert);
    REQUIRE_MESSAGE(c.connect_and_wait(h.server->port()), c.fail_reason);
    check_hello_and_echo(h, c);
}

TEST_CASE("tls: asio_tls reports a failed TLS handshake as an error event, then keeps serving") {
    harness<> h;
    h.start();
    {
        wss_client stranger(h.ioc, certs().other_cert);
        CHECK_FALSE(stranger.connect_and_wait(h.server->port()));
    }
    REQUIRE(wait_until(h.ioc, [&] { return !h.errors.empty(); }));
    CHECK_MESSAGE(h.errors[0].find("TLS handshake failed") != std::string::npos, h.errors[0]);
    CHECK(h.connections == 0);
}

// ---- mesa::tls_client (<mesa/client_tls.hpp>) ------------------------------

namespace {

/// A TLS server with 50 ms heartbeats: the hello carries c_heartbeat_interval
/// and op 1 / op 11 cross the TLS connection in both directions.
using beating_tls_server = mesa::server<mesa::transport::asio_tls, mesa::broker::memory, mesa::heartbeat>;

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
void check_connects_and_echoes(harness<>& h, mesa::tls_client::options const& o) {
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
    harness<> h;
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
    harness<> h;
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
    harness<> h;
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
    harness<> h;
    // Untrusted and for another name: both checks are off.
    h.options.transport.certificate_chain_file = certs().elsewhere_cert.string();
    h.options.transport.private_key_file = certs().elsewhere_key.string();
    h.start();
    mesa::tls_client::options o;
    o.tls.verify_peer = false;
    check_connects_and_echoes(h, o);
}

TEST_CASE("tls client: presents its certificate to a server that requires one") {
    harness<> h;
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
