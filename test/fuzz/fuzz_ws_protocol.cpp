// libFuzzer target: the lean transport's protocol steps without sockets, as
// a connection meets them: request bytes fed to detail::handshake in pieces
// of arbitrary sizes, then, after an upgrade, the bytes behind it and the
// rest of the input fed to detail::frame_reader in pieces. Invariants:
//
// - the handshake decides once per request: refused with a 4xx status (or
//   501 for an unknown transfer coding) and a response that starts with that
//   status line, or an upgrade whose 101 response carries an accept value, or
//   a whole HTTP request; a request the input cuts short gets 408; a HEAD's
//   response has no body; after an answered request on a persistent
//   connection, the next request comes from the bytes left (pipelining);
// - a request is refused at the latest once more than the header limit is
//   buffered without a whole header;
// - the reader reports whole messages no larger than its limit, text ones
//   valid UTF-8, control payloads of at most 125 bytes, and a close code
//   that is valid on the wire; errors carry 1002, 1007 or 1009; after a
//   close or an error it reports nothing more;
// - the bytes it holds stay within twice the limit (string growth) plus a
//   frame header and a control payload, whatever a header announces.
//
// The first input byte chooses the piece sizes, the path, and whether the
// server refuses every request at its header (401). Build and run: .ci/fuzz.
#include <mesa/transport/detail/ws_frames.hpp>
#include <mesa/transport/detail/ws_handshake.hpp>

#include <websocketpp/utf8_validator.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(char const* what) {
    std::fprintf(stderr, "fuzz_ws_protocol: invariant broken: %s\n", what);
    std::abort();
}

constexpr std::size_t max_message = 512;

void read_frames(std::string bytes, std::size_t piece) {
    using mesa::transport::detail::frame_event;
    mesa::transport::detail::frame_reader reader{max_message};
    bool ended = false;
    for (std::size_t at = 0; at < bytes.size() && !ended; at += piece) {
        std::size_t const n = std::min(piece, bytes.size() - at);
        auto error = reader.feed(&bytes[at], n, [&](frame_event e, std::string_view payload) {
            if (ended) fail("an event after a close");
            switch (e) {
                case frame_event::text:
                    if (!websocketpp::utf8_validator::validate(std::string(payload))) fail("text that is not UTF-8");
                    [[fallthrough]];
                case frame_event::binary:
                    if (payload.size() > max_message) fail("a message over the limit");
                    break;
                case frame_event::ping:
                case frame_event::pong:
                    if (payload.size() > 125) fail("a control payload over 125 bytes");
                    break;
                case frame_event::close: {
                    auto const code = reader.close_code();
                    if (code != 1005 && (code < 1000 || code >= 5000 || code == 1004 || code == 1006 || code == 1015 ||
                                         (code >= 1016 && code <= 2999)))
                        fail("a close code invalid on the wire");
                    if (payload.size() > 123) fail("a close reason over 123 bytes");
                    ended = true;
                    break;
                }
            }
        });
        if (error) {
            if (error.code != 1002 && error.code != 1007 && error.code != 1009) fail("an unexpected error code");
            ended = true;
        }
        // Growth may double a buffer; an announced length must not size it.
        if (reader.held_bytes() > 2 * max_message + 14 + 125) fail("more held than a message can need");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size == 0) return 0;
    std::size_t const piece = 1 + data[0] % 64;
    bool const refuse_headers = data[0] & 0x40;  // the server refuses every request at its header
    std::string_view input(reinterpret_cast<char const*>(data + 1), size - 1);

    using mesa::transport::detail::request_verdict;
    std::optional<std::string> const path = (data[0] & 0x80) ? std::optional<std::string>("/ws") : std::nullopt;
    mesa::transport::detail::request_limits limits;
    limits.max_header_bytes = 1024;
    limits.max_body_bytes = 256;
    mesa::transport::detail::handshake h{path, limits};
    std::size_t at = 0;
    std::size_t requests = 0;
    request_verdict v = h.feed({});
    for (;;) {
        // One request: fed in pieces until the handshake decides.
        std::size_t const from = at;
        for (;;) {
            while (v == request_verdict::interim || v == request_verdict::header) {
                if (v == request_verdict::interim && h.response() != "HTTP/1.1 100 Continue\r\n\r\n")
                    fail("an interim response other than 100");
                if (v == request_verdict::header && refuse_headers) {
                    if (h.refuse_request({401, {}, "no"}).rfind("HTTP/1.1 401 ", 0) != 0) fail("a wrong status line");
                    v = request_verdict::refused;
                    break;
                }
                v = h.feed({});
            }
            if (v != request_verdict::need_more || at >= input.size()) break;
            std::size_t const n = std::min(piece, input.size() - at);
            v = h.feed(input.substr(at, n));
            at += n;
            if (at - from > limits.max_header_bytes + limits.max_body_bytes + 4096)
                fail("still reading far past every limit");
        }
        if (v == request_verdict::need_more && h.started()) {  // the input ended within a request
            v = h.timed_out();
            if (h.status() != 408) fail("a request cut short not answered 408");
        }
        switch (v) {
            case request_verdict::refused: {
                int const status = h.status();
                if ((status < 400 || status >= 500) && status != 501) fail("a refusal that is not a 4xx or 501");
                if (h.response().rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) != 0) fail("a wrong status line");
                if (status != 401 && h.keep_alive()) fail("a refusal of the transport's own keeps the connection");
                break;
            }
            case request_verdict::upgrade: {
                if (h.accept().find("\r\nSec-WebSocket-Accept: ") == std::string::npos) fail("a 101 without accept");
                std::string frames = h.take_rest();
                frames.append(input.substr(at));
                read_frames(std::move(frames), piece);
                return 0;
            }
            case request_verdict::http: {
                auto request = h.take_request();
                if (request.body.size() > limits.max_body_bytes) fail("a body over the limit");
                std::string const response = h.respond({200, {}, "body"});
                if ((request.method == "HEAD") != (response.substr(response.size() - 4) == "\r\n\r\n"))
                    fail("a HEAD answered with a body, or another request without one");
                break;
            }
            default:
                return 0;
        }
        // The next request on a persistent connection, from the bytes left.
        if (!h.keep_alive() || ++requests > 64) return 0;
        v = h.next();
    }
}
