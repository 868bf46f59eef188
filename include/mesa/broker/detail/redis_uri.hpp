#pragma once
// Parses the address of a Redis server:
//   redis://[[user]:password@]host[:port][/db]     (IPv6 host in brackets)
//   rediss://...                                   (the same over TLS)
//   unix:///path/to/redis.sock[?db=N&password=P&user=U]
//   /path/to/redis.sock
// and of a Redis Sentinel: host[:port] (port 26379 when left out; an IPv6
// host in brackets). User and password may be percent-encoded. Anything else
// throws std::invalid_argument naming the problem.
#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mesa::broker::detail {

struct redis_endpoint {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string unix_path;  // non-empty: a unix socket instead of host:port
    std::string user;       // empty: the default user (AUTH <password>)
    std::string password;   // empty: no AUTH
    int db = 0;             // non-zero: SELECT db
    bool tls = false;       // rediss://

    bool is_unix() const noexcept { return !unix_path.empty(); }
    /// Where it points, without credentials (for logs).
    std::string describe() const {
        if (is_unix()) return "unix:" + unix_path;
        auto const h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return h + ":" + std::to_string(port) + (db ? "/" + std::to_string(db) : "");
    }
};

/// A host and a TCP port: a sentinel, or the master a sentinel names.
struct redis_address {
    std::string host;
    std::uint16_t port = 0;

    std::string describe() const {
        return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
    friend bool operator==(redis_address const& a, redis_address const& b) {
        return a.port == b.port && a.host == b.host;
    }
    friend bool operator!=(redis_address const& a, redis_address const& b) { return !(a == b); }
};

namespace redis_uri_impl {

[[noreturn]] inline void fail(std::string_view uri, std::string const& why) {
    throw std::invalid_argument("invalid redis uri '" + std::string(uri) + "': " + why);
}

template <class Int>
Int number(std::string_view uri, std::string_view text, Int min, Int max, char const* what) {
    Int value{};
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min || value > max)
        fail(uri, std::string(what) + " '" + std::string(text) + "' is not a number in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "]");
    return value;
}

inline std::string decode(std::string_view uri, std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        auto hex = [&](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        if (i + 2 >= text.size()) fail(uri, "truncated percent-encoding");
        int const hi = hex(text[i + 1]), lo = hex(text[i + 2]);
        if (hi < 0 || lo < 0) fail(uri, "bad percent-encoding");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

inline void query(std::string_view uri, std::string_view q, redis_endpoint& e) {
    while (!q.empty()) {
        auto const amp = q.find('&');
        auto const item = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
        auto const eq = item.find('=');
        if (eq == std::string_view::npos) fail(uri, "query item '" + std::string(item) + "' has no '='");
        auto const key = item.substr(0, eq), value = item.substr(eq + 1);
        if (key == "db")
            e.db = number<int>(uri, value, 0, 1 << 20, "db");
        else if (key == "password")
            e.password = decode(uri, value);
        else if (key == "user")
            e.user = decode(uri, value);
        else
            fail(uri, "unknown query parameter '" + std::string(key) + "'");
    }
    if (!e.user.empty() && e.password.empty()) fail(uri, "a user needs a password");
}

}  // namespace redis_uri_impl

inline redis_endpoint parse_redis_uri(std::string_view uri) {
    using namespace redis_uri_impl;
    redis_endpoint e;
    if (uri.empty()) fail(uri, "empty");
    if (uri.front() == '/') {
        e.unix_path = std::string(uri);
        return e;
    }
    constexpr std::string_view unix_scheme = "unix://", redis_scheme = "redis://", tls_scheme = "rediss://";
    if (uri.substr(0, unix_scheme.size()) == unix_scheme) {
        auto rest = uri.substr(unix_scheme.size());
        auto const q = rest.find('?');
        if (q != std::string_view::npos) {
            query(uri, rest.substr(q + 1), e);
            rest = rest.substr(0, q);
        }
        if (rest.empty() || rest.front() != '/') fail(uri, "a unix socket path must be absolute (unix:///path)");
        e.unix_path = std::string(rest);
    } else if (uri.substr(0, redis_scheme.size()) == redis_scheme || uri.substr(0, tls_scheme.size()) == tls_scheme) {
        e.tls = uri.substr(0, tls_scheme.size()) == tls_scheme;
        auto rest = uri.substr(e.tls ? tls_scheme.size() : redis_scheme.size());
        auto const slash = rest.find('/');
        auto authority = rest.substr(0, slash);
        if (slash != std::string_view::npos) {
            auto const db = rest.substr(slash + 1);
            if (!db.empty()) e.db = number<int>(uri, db, 0, 1 << 20, "db");
        }
        // The last '@' ends the credentials: an unencoded '@' in a password still parses.
        if (auto const at = authority.rfind('@'); at != std::string_view::npos) {
            auto const userinfo = authority.substr(0, at);
            authority = authority.substr(at + 1);
            auto const colon = userinfo.find(':');
            if (colon == std::string_view::npos) {
                // redis://password@host is the common shorthand (as ioredis reads it).
                e.password = decode(uri, userinfo);
            } else {
                e.user = decode(uri, userinfo.substr(0, colon));
                e.password = decode(uri, userinfo.substr(colon + 1));
            }
            if (!e.user.empty() && e.password.empty()) fail(uri, "a user needs a password");
        }
        std::string_view port;
        if (!authority.empty() && authority.front() == '[') {
            auto const close = authority.find(']');
            if (close == std::string_view::npos) fail(uri, "unterminated '[' in host");
            e.host = std::string(authority.substr(1, close - 1));
            auto const after = authority.substr(close + 1);
            if (!after.empty()) {
                if (after.front() != ':') fail(uri, "unexpected text after ']'");
                port = after.substr(1);
                if (port.empty()) fail(uri, "empty port");
            }
        } else {
            auto const colon = authority.rfind(':');
            e.host = std::string(authority.substr(0, colon));
            if (colon != std::string_view::npos) {
                port = authority.substr(colon + 1);
                if (port.empty()) fail(uri, "empty port");
            }
        }
        if (e.host.empty()) fail(uri, "no host");
        if (!port.empty()) e.port = number<std::uint16_t>(uri, port, 1, 65535, "port");
    } else {
        fail(uri, "expected redis://host:port, rediss://host:port, unix:///path or an absolute socket path");
    }
    return e;
}

/// "host:port", "[v6]:port" or "host" (port 26379, Sentinel's), as a sentinel's address.
inline redis_address parse_sentinel_address(std::string_view text) {
    auto fail_here = [&](std::string const& why) {
        throw std::invalid_argument("invalid sentinel address '" + std::string(text) + "': " + why);
    };
    redis_address a;
    a.port = 26379;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto const close = text.find(']');
        if (close == std::string_view::npos) fail_here("unterminated '[' in host");
        a.host = std::string(text.substr(1, close - 1));
        auto const after = text.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') fail_here("unexpected text after ']'");
            port = after.substr(1);
            if (port.empty()) fail_here("empty port");
        }
    } else {
        auto const colon = text.rfind(':');
        a.host = std::string(text.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = text.substr(colon + 1);
            if (port.empty()) fail_here("empty port");
        }
    }
    if (a.host.empty()) fail_here("no host");
    if (a.host.find_first_of("/@ ") != std::string::npos) fail_here("expected host:port");
    if (!port.empty()) {
        unsigned value = 0;
        auto const [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535)
            fail_here("port '" + std::string(port) + "' is not a number in [1, 65535]");
        a.port = static_cast<std::uint16_t>(value);
    }
    return a;
}

}  // namespace mesa::broker::detail
