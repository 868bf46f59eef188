// The opening handshake as a state machine (RFC 6455 §4.2.1, §4.4), fed
// request bytes without sockets.
#include <mesa/transport/detail/ws_handshake.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>

using mesa::transport::detail::handshake;
using mesa::transport::detail::request_limits;
using mesa::transport::detail::request_verdict;

namespace {

std::string const key = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 §1.3's example

std::string upgrade_request(std::string const& headers, std::string const& line = "GET /ws HTTP/1.1") {
    return line + "\r\n" + headers + "\r\n";
}

std::string const valid_headers =
    "Host: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: " +
    key + "\r\nSec-WebSocket-Version: 13\r\n";

/// Feeds `bytes` as a transport does whose server lets every header through.
request_verdict feed(handshake& h, std::string_view bytes) {
    auto v = h.feed(bytes);
    while (v == request_verdict::header) v = h.feed({});
    return v;
}

/// Feeds `request` one byte at a time: every byte but the last must leave the
/// handshake wanting more; returns its verdict on the last.
request_verdict feed_byte_by_byte(handshake& h, std::string const& request) {
    for (std::size_t i = 0; i + 1 < request.size(); ++i)
        REQUIRE(feed(h, std::string_view(&request[i], 1)) == request_verdict::need_more);
    return feed(h, std::string_view(&request.back(), 1));
}

/// Feeds `request` whole to a handshake serving `path` and returns the status
/// it answers: 101 when it accepts the upgrade (the server admitting it), 0
/// when it wants more bytes, -1 for a plain HTTP request.
int status_of(std::string const& request, std::optional<std::string> const& path = std::string("/ws")) {
    handshake h{path};
    switch (feed(h, request)) {
        case request_verdict::upgrade:
            return 101;
        case request_verdict::refused:
            return h.status();
        case request_verdict::http:
            return -1;
        default:
            return 0;
    }
}

std::string without(std::string headers, std::string const& line) {
    auto at = headers.find(line);
    REQUIRE(at != std::string::npos);
    return headers.erase(at, line.size());
}

std::string replaced(std::string const& headers, std::string const& line, std::string const& by) {
    return without(headers, line) + by;
}

}  // namespace

TEST_CASE("handshake: a valid upgrade gets 101 with the RFC's accept value, fed byte by byte too") {
    std::optional<std::string> path = std::string("/ws");
    std::string const request =
        upgrade_request(valid_headers + "Origin: https://a.example\r\n", "GET /ws?room=1 HTTP/1.1");
    SUBCASE("at once") {
        handshake h{path};
        REQUIRE(h.feed(request) == request_verdict::upgrade);
        CHECK(h.target() == "/ws?room=1");
        CHECK(h.origin() == "https://a.example");
        std::string const response = h.accept();
        CHECK(response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
        CHECK(response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
        CHECK(response.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
        CHECK(response.find("\r\nConnection: Upgrade\r\n") != std::string::npos);
        CHECK(response.find("Server:") == std::string::npos);
        CHECK(response.substr(response.size() - 4) == "\r\n\r\n");
    }
    SUBCASE("one byte at a time") {
        handshake h{path};
        for (std::size_t i = 0; i + 1 < request.size(); ++i)
            REQUIRE(h.feed(std::string_view(&request[i], 1)) == request_verdict::need_more);
        REQUIRE(h.feed(std::string_view(&request.back(), 1)) == request_verdict::upgrade);
        CHECK(h.target() == "/ws?room=1");
    }
    SUBCASE("frames sent right behind the request are kept for the frame parser") {
        handshake h{path};
        std::string const frame = "\x81\x85\x01\x02\x03\x04hallo";
        REQUIRE(h.feed(request + frame) == request_verdict::upgrade);
        CHECK(h.take_rest() == frame);
    }
}

TEST_CASE("handshake: the headers' names and tokens are case-insensitive, token lists are lists") {
    std::string const headers =
        "host: example.com\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
        "sec-websocket-key: " +
        key + "\r\nsec-websocket-version: 13\r\n";
    CHECK(status_of(upgrade_request(headers)) == 101);
}

TEST_CASE("handshake: a malformed upgrade gets 400, never a 5xx") {
    struct input {
        char const* name;
        std::string request;
    };
    input const cases[] = {
        {"not GET", upgrade_request(valid_headers, "POST /ws HTTP/1.1")},
        {"HTTP/1.0", upgrade_request(valid_headers, "GET /ws HTTP/1.0")},
        {"no Host", upgrade_request(without(valid_headers, "Host: example.com\r\n"))},
        {"no Connection", upgrade_request(without(valid_headers, "Connection: Upgrade\r\n"))},
        {"Connection without upgrade",
         upgrade_request(replaced(valid_headers, "Connection: Upgrade\r\n", "Connection: keep-alive\r\n"))},
        {"no key", upgrade_request(without(valid_headers, "Sec-WebSocket-Key: " + key + "\r\n"))},
        {"key abc",
         upgrade_request(replaced(valid_headers, "Sec-WebSocket-Key: " + key + "\r\n", "Sec-WebSocket-Key: abc\r\n"))},
        {"key of 15 bytes", upgrade_request(replaced(valid_headers, "Sec-WebSocket-Key: " + key + "\r\n",
                                                     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n"))},
        {"key of 17 bytes", upgrade_request(replaced(valid_headers, "Sec-WebSocket-Key: " + key + "\r\n",
                                                     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n"))},
        {"key not base64", upgrade_request(replaced(valid_headers, "Sec-WebSocket-Key: " + key + "\r\n",
                                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=\r\n"))},
        {"key with bits past the 16th byte",
         upgrade_request(replaced(valid_headers, "Sec-WebSocket-Key: " + key + "\r\n",
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n"))},
        {"two keys", upgrade_request(valid_headers + "Sec-WebSocket-Key: " + key + "\r\n")},
        {"a body", upgrade_request(valid_headers + "Content-Length: 2\r\n") + "{}"},
        {"not HTTP at all", "hello there\r\n\r\n"},
    };
    for (auto const& c : cases) {
        INFO(c.name);
        CHECK(status_of(c.request) == 400);
    }
}

TEST_CASE("handshake: a missing or other Sec-WebSocket-Version gets 426 naming version 13") {
    std::string const version = "Sec-WebSocket-Version: 13\r\n";
    for (std::string const& request :
         {upgrade_request(without(valid_headers, version)),
          upgrade_request(replaced(valid_headers, version, "Sec-WebSocket-Version: 8\r\n")),
          upgrade_request(replaced(valid_headers, version, "Sec-WebSocket-Version: 13, 8\r\n")),
          upgrade_request(valid_headers + "Sec-WebSocket-Version: 8\r\n")}) {
        INFO(request);
        std::optional<std::string> path = std::string("/ws");
        handshake h{path};
        REQUIRE(h.feed(request) == request_verdict::refused);
        CHECK(h.status() == 426);
        CHECK(h.response().rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
        CHECK(h.response().find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
        CHECK(h.response().find("\r\nConnection: close\r\n") != std::string::npos);
    }
}

TEST_CASE("handshake: a header block over the limit gets 431, whole or still arriving") {
    std::optional<std::string> path;
    request_limits limits;
    limits.max_header_bytes = 1024;
    std::string const big = upgrade_request(valid_headers + "Cookie: " + std::string(2000, 'c') + "\r\n");
    SUBCASE("whole") {
        handshake h{path, limits};
        REQUIRE(h.feed(big) == request_verdict::refused);
        CHECK(h.status() == 431);
    }
    SUBCASE("without its end: refused as soon as it is too long") {
        handshake h{path, limits};
        REQUIRE(h.feed(big.substr(0, 1000)) == request_verdict::need_more);
        REQUIRE(h.feed(big.substr(1000, 100)) == request_verdict::refused);
        CHECK(h.status() == 431);
    }
    SUBCASE("just under the limit passes") {
        std::string const fits = upgrade_request(valid_headers + "Cookie: c\r\n");
        REQUIRE(fits.size() < limits.max_header_bytes);
        handshake h{path, limits};
        CHECK(h.feed(fits) == request_verdict::upgrade);
    }
}

TEST_CASE("handshake: refusals come in order: path 404, then malformed 400/426, then the server's") {
    // A wrong path wins over a malformed request.
    CHECK(status_of(upgrade_request(without(valid_headers, "Sec-WebSocket-Version: 13\r\n"), "GET /other HTTP/1.1")) ==
          404);
    CHECK(status_of(upgrade_request(valid_headers, "GET /wsx HTTP/1.1")) == 404);
    // A malformed request is refused before the server is asked (its Origin and capacity).
    std::optional<std::string> path;
    handshake h{path};
    REQUIRE(h.feed(upgrade_request(without(valid_headers, "Sec-WebSocket-Version: 13\r\n") +
                                   "Origin: https://evil.example\r\n")) == request_verdict::refused);
    CHECK(h.status() == 426);
    // A valid one is the server's to refuse.
    handshake ok{path};
    REQUIRE(ok.feed(upgrade_request(valid_headers + "Origin: https://evil.example\r\n")) == request_verdict::upgrade);
    std::string const response = ok.refuse(403);
    CHECK(response.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
    CHECK(ok.status() == 403);
}

TEST_CASE("handshake: plain HTTP requests are whole requests for the http handler") {
    std::optional<std::string> path = std::string("/ws");
    SUBCASE("with a Content-Length body, on any path") {
        handshake h{path};
        REQUIRE(feed(h,
                     "POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nAuthorization: Bearer k\r\n\r\n"
                     "{\"a\":") == request_verdict::need_more);
        REQUIRE(feed(h, "1}") == request_verdict::http);
        auto r = h.take_request();
        CHECK(r.method == "POST");
        CHECK(r.target == "/dispatch");
        CHECK(r.body == "{\"a\":1}");
        CHECK(r.header("authorization") == std::optional<std::string>("Bearer k"));
    }
    SUBCASE("with a chunked body") {
        handshake h{path};
        REQUIRE(feed(h, "POST /dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n") ==
                request_verdict::need_more);
        REQUIRE(feed(h, "3\r\n:1}\r\n0\r\n\r\n") == request_verdict::http);
        CHECK(h.take_request().body == "{\"a\":1}");
    }
    SUBCASE("a chunked body fed byte by byte") {
        handshake h{path};
        std::string const request =
            "POST /dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        REQUIRE(feed_byte_by_byte(h, request) == request_verdict::http);
        CHECK(h.take_request().body == "{}");
    }
    SUBCASE("Expect: 100-continue gets its interim response before the body") {
        handshake h{path};
        REQUIRE(feed(h, "POST /dispatch HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n") ==
                request_verdict::interim);
        CHECK(h.response() == "HTTP/1.1 100 Continue\r\n\r\n");
        REQUIRE(feed(h, "{}") == request_verdict::http);
        CHECK(h.take_request().body == "{}");
    }
    SUBCASE("Expect: 100-continue without a body gets no interim response") {
        handshake h{path};
        CHECK(feed(h, "GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n") == request_verdict::http);
    }
    SUBCASE("a body announced over the limit is refused with 413 before it is read") {
        request_limits limits;
        limits.max_body_bytes = 1000;
        handshake h{path, limits};
        REQUIRE(feed(h, "POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n") ==
                request_verdict::refused);
        CHECK(h.status() == 413);
    }
    SUBCASE("a chunked body growing over the limit is refused with 413") {
        request_limits limits;
        limits.max_body_bytes = 10;
        handshake h{path, limits};
        CHECK(feed(h, "POST /dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" +
                          std::string(32, 'x') + "\r\n") == request_verdict::refused);
        CHECK(h.status() == 413);
    }
    SUBCASE("an Upgrade to something else than websocket is plain HTTP") {
        CHECK(status_of("GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n") == -1);
    }
}

namespace {
bool has(std::string const& response, std::string const& line) { return response.find(line) != std::string::npos; }
}  // namespace

TEST_CASE("handshake: HTTP/1.1 connections persist; pipelined requests come one at a time, in order") {
    std::optional<std::string> path = std::string("/ws");
    SUBCASE("an HTTP/1.1 request keeps the connection; the response says how long it may idle") {
        handshake h{path};
        REQUIRE(feed(h, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::http);
        CHECK(h.take_request().target == "/health");
        CHECK(h.keep_alive());
        std::string const response = h.respond({200, {}, "ok\n"});
        CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
        CHECK_FALSE(has(response, "Connection: close"));
        CHECK(has(response, "\r\nKeep-Alive: timeout=5\r\n"));
        CHECK(has(response, "\r\nContent-Length: 3\r\n"));
        CHECK(response.substr(response.size() - 7) == "\r\n\r\nok\n");
        // Nothing more was sent: the connection is idle.
        CHECK(h.next() == request_verdict::need_more);
        CHECK_FALSE(h.started());
        REQUIRE(feed(h, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::http);
        CHECK(h.take_request().target == "/ready");
    }
    SUBCASE("two requests sent at once are answered one after the other") {
        handshake h{path};
        REQUIRE(feed(h,
                     "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                     "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[1]") == request_verdict::http);
        auto first = h.take_request();
        CHECK(first.target == "/a");
        CHECK(first.body == "{}");
        h.respond({202, {}, ""});
        auto v = h.next();
        while (v == request_verdict::header) v = h.feed({});
        REQUIRE(v == request_verdict::http);
        auto second = h.take_request();
        CHECK(second.target == "/b");
        CHECK(second.body == "[1]");
        CHECK(h.next() == request_verdict::need_more);
    }
    SUBCASE("a later request on the connection may be the WebSocket upgrade") {
        handshake h{path};
        REQUIRE(feed(h, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + upgrade_request(valid_headers)) ==
                request_verdict::http);
        h.respond({200, {}, "ok"});
        REQUIRE(h.next() == request_verdict::upgrade);
        CHECK(h.target() == "/ws");
    }
    SUBCASE("Connection: close ends it") {
        handshake h{path};
        REQUIRE(feed(h, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == request_verdict::http);
        CHECK_FALSE(h.keep_alive());
        CHECK(has(h.respond({200, {}, "ok"}), "\r\nConnection: close\r\n"));
    }
    SUBCASE("HTTP/1.0 persists only with Connection: keep-alive, and the response says so") {
        handshake h10{path};
        REQUIRE(feed(h10, "GET /health HTTP/1.0\r\n\r\n") == request_verdict::http);
        CHECK_FALSE(h10.keep_alive());
        CHECK(has(h10.respond({200, {}, "ok"}), "\r\nConnection: close\r\n"));
        handshake kept{path};
        REQUIRE(feed(kept, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == request_verdict::http);
        CHECK(kept.keep_alive());
        CHECK(has(kept.respond({200, {}, "ok"}), "\r\nConnection: keep-alive\r\n"));
    }
    SUBCASE("the server's own Connection: close ends it; its framing headers are replaced") {
        handshake h{path};
        REQUIRE(feed(h, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::http);
        std::string const response = h.respond(
            {200, {{"Connection", "close"}, {"Content-Length", "99"}, {"Transfer-Encoding", "chunked"}}, "ok"});
        CHECK_FALSE(h.keep_alive());
        CHECK(has(response, "\r\nConnection: close\r\n"));
        CHECK(has(response, "\r\nContent-Length: 2\r\n"));
        CHECK_FALSE(has(response, "99"));
        CHECK_FALSE(has(response, "Transfer-Encoding"));
    }
    SUBCASE("a refusal of the transport's own ends it") {
        handshake h{path};
        REQUIRE(feed(h, "GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n") == request_verdict::refused);
        CHECK(h.status() == 400);
        CHECK_FALSE(h.keep_alive());
        CHECK(has(h.response(), "\r\nConnection: close\r\n"));
    }
}

TEST_CASE("handshake: the server checks a plain request's header before its body is read") {
    std::optional<std::string> path = std::string("/ws");
    request_limits limits;
    limits.max_body_bytes = 1000;
    std::string const big = "POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n";
    SUBCASE("refused there: the server's response, before the transport's 413; the connection closes") {
        handshake h{path, limits};
        REQUIRE(h.feed(big + "{\"message\"") == request_verdict::header);
        auto header = h.header();
        CHECK(header.method == "POST");
        CHECK(header.target == "/dispatch");
        CHECK(header.header("content-length") == std::optional<std::string>("30000000"));
        CHECK(header.body.empty());
        std::string const response = h.refuse_request({401, {{"WWW-Authenticate", "Bearer"}}, "who?\n"});
        CHECK(response.rfind("HTTP/1.1 401 Unauthorized\r\n", 0) == 0);
        CHECK(has(response, "\r\nWWW-Authenticate: Bearer\r\n"));
        CHECK(has(response, "\r\nConnection: close\r\n"));  // its body was not read
        CHECK(h.status() == 401);
        CHECK_FALSE(h.keep_alive());
    }
    SUBCASE("let through: the transport's own bound follows") {
        handshake h{path, limits};
        REQUIRE(h.feed(big) == request_verdict::header);
        CHECK(h.feed({}) == request_verdict::refused);
        CHECK(h.status() == 413);
    }
    SUBCASE("a request without a body refused there keeps the connection") {
        handshake h{path, limits};
        REQUIRE(h.feed("GET /presence?id=a HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::header);
        CHECK(has(h.refuse_request({401, {}, "who?\n"}), "Keep-Alive: timeout="));
        CHECK(h.keep_alive());
    }
    SUBCASE("an upgrade is not asked about: it has its own checks") {
        handshake h{path, limits};
        CHECK(h.feed(upgrade_request(valid_headers)) == request_verdict::upgrade);
    }
}

TEST_CASE("handshake: a HEAD gets the GET's headers and Content-Length, without a body (RFC 9110 §9.3.2)") {
    std::optional<std::string> path = std::string("/ws");
    handshake h{path};
    REQUIRE(feed(h, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::http);
    CHECK(h.take_request().method == "HEAD");
    std::string const response = h.respond({200, {{"Content-Type", "application/json"}}, "{\"status\":\"ok\"}\n"});
    CHECK(has(response, "\r\nContent-Length: 16\r\n"));
    CHECK(has(response, "\r\nContent-Type: application/json\r\n"));
    CHECK(response.substr(response.size() - 4) == "\r\n\r\n");
}

TEST_CASE("handshake: a transfer coding other than chunked alone gets 501 (RFC 9112 §6.1)") {
    for (std::string const coding :
         {"Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: gzip\r\n",
          "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: chunked, chunked\r\n"}) {
        INFO(coding);
        CHECK(status_of("POST /dispatch HTTP/1.1\r\nHost: x\r\n" + coding + "\r\n5\r\nhello\r\n0\r\n\r\n") == 501);
    }
    CHECK(status_of("POST /dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n") == -1);
}

TEST_CASE("handshake: a request begun and not whole in time gets 408; an idle connection nothing") {
    std::optional<std::string> path = std::string("/ws");
    handshake idle{path};
    CHECK_FALSE(idle.started());
    handshake slow{path};
    REQUIRE(slow.feed("POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Le") == request_verdict::need_more);
    CHECK(slow.started());
    CHECK(slow.timed_out() == request_verdict::refused);
    CHECK(slow.status() == 408);
    CHECK(slow.response().rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
    CHECK(has(slow.response(), "\r\nConnection: close\r\n"));
}

TEST_CASE("handshake: an HTTP/1.1 request needs one Host with a valid value, else 400 (RFC 9112 §3.2)") {
    CHECK(status_of("POST /dispatch HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}") == 400);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
    CHECK(status_of("GET /health HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: a b\r\n\r\n") == 400);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n") == 400);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: a:8x\r\n\r\n") == 400);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: [::1\r\n\r\n") == 400);
    CHECK(status_of(upgrade_request(replaced(valid_headers, "Host: example.com\r\n", "Host: a@b\r\n"))) == 400);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: example.com:8080\r\n\r\n") == -1);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: [::1]:80\r\n\r\n") == -1);
    CHECK(status_of("GET /health HTTP/1.1\r\nHost: \r\n\r\n") == -1);  // empty: a target without authority
    CHECK(status_of("GET /health HTTP/1.0\r\n\r\n") == -1);
    handshake h{std::string("/ws")};
    REQUIRE(feed(h, "GET /health HTTP/1.1\r\n\r\n") == request_verdict::refused);
    CHECK_FALSE(h.keep_alive());
}

TEST_CASE("handshake: an HTTP/1.0 request with Transfer-Encoding has faulty framing: 400 and close (RFC 9112 §6.1)") {
    std::optional<std::string> path = std::string("/ws");
    handshake h{path};
    REQUIRE(feed(h,
                 "POST /dispatch HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\n{}\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::refused);
    CHECK(h.status() == 400);
    CHECK_FALSE(h.keep_alive());
    CHECK(has(h.response(), "\r\nConnection: close\r\n"));
    CHECK(status_of("POST /d HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}") == 400);
}

TEST_CASE("handshake: Expect: 100-continue of an HTTP/1.0 request is ignored (RFC 9110 §10.1.1)") {
    handshake h{std::string("/ws")};
    CHECK(feed(h, "POST /dispatch HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n") ==
          request_verdict::need_more);
    CHECK(h.response().empty());
    REQUIRE(feed(h, "{}") == request_verdict::http);
    CHECK(h.take_request().body == "{}");
}

TEST_CASE("handshake: empty lines before a request line are ignored, up to the header limit (RFC 9112 §2.2)") {
    std::optional<std::string> path = std::string("/ws");
    SUBCASE("before the first request, fed whole or byte by byte") {
        CHECK(status_of("\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n") == -1);
        handshake h{path};
        std::string const request = "\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        REQUIRE(feed_byte_by_byte(h, request) == request_verdict::http);
        CHECK(h.take_request().target == "/health");
    }
    SUBCASE("after a POST body, before the next pipelined request; an idle CRLF keeps the connection") {
        handshake h{path};
        REQUIRE(feed(h,
                     "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\r\n"
                     "GET /b HTTP/1.1\r\nHost: x\r\n\r\n\r\n") == request_verdict::http);
        CHECK(h.take_request().target == "/a");
        h.respond({202, {}, ""});
        auto v = h.next();
        while (v == request_verdict::header) v = h.feed({});
        REQUIRE(v == request_verdict::http);
        CHECK(h.take_request().target == "/b");
        h.respond({200, {}, ""});
        CHECK(h.next() == request_verdict::need_more);
        CHECK_FALSE(h.started());
    }
    SUBCASE("more than the header limit of them is refused") {
        request_limits limits;
        limits.max_header_bytes = 100;
        handshake h{path, limits};
        std::string lines;
        for (int i = 0; i < 60; ++i) lines += "\r\n";
        CHECK(h.feed(lines) == request_verdict::refused);
        CHECK(h.status() == 400);
    }
}

TEST_CASE("handshake: every response carries a Date, an IMF-fixdate (RFC 9110 §6.6.1)") {
    auto const date_of = [](std::string const& response) {
        auto const at = response.find("\r\nDate: ");
        REQUIRE(at != std::string::npos);
        return response.substr(at + 8, response.find("\r\n", at + 2) - at - 8);
    };
    handshake h{std::string("/ws")};
    REQUIRE(feed(h, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == request_verdict::http);
    auto const date = date_of(h.respond({200, {{"Date", "yesterday"}}, "ok"}));
    // e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
    REQUIRE(date.size() == 29);
    CHECK(date.substr(3, 2) == ", ");
    CHECK(date.substr(25) == " GMT");
    CHECK(date[19] == ':');
    CHECK_FALSE(has(h.respond({200, {{"Date", "yesterday"}}, "ok"}), "yesterday"));
    handshake refused{std::string("/ws")};
    REQUIRE(feed(refused, "GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n") == request_verdict::refused);
    CHECK(date_of(refused.response()).size() == 29);
}

TEST_CASE("handshake: an absolute-form target is served by its path (RFC 9112 §3.2.2)") {
    std::optional<std::string> path = std::string("/ws");
    handshake h{path};
    REQUIRE(feed(h, "GET http://example.com:4500/health?x=1 HTTP/1.1\r\nHost: example.com:4500\r\n\r\n") ==
            request_verdict::http);
    CHECK(h.take_request().target == "/health?x=1");
    handshake bare{path};
    REQUIRE(feed(bare, "GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n") == request_verdict::http);
    CHECK(bare.take_request().target == "/");
    CHECK(status_of(upgrade_request(valid_headers, "GET http://example.com/ws HTTP/1.1")) == 101);
}

TEST_CASE("handshake: HTTP/1.2 is served as HTTP/1.1 (RFC 9110 §2.5)") {
    handshake h{std::string("/ws")};
    REQUIRE(feed(h, "GET /health HTTP/1.2\r\nHost: x\r\n\r\n") == request_verdict::http);
    CHECK(h.keep_alive());
    CHECK(status_of("GET /health HTTP/1.2\r\n\r\n") == 400);  // no Host, as 1.1
    CHECK(status_of("GET /health HTTP/2.0\r\nHost: x\r\n\r\n") == 400);
}
