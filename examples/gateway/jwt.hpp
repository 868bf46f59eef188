#pragma once
// Verification of the clients' JSON Web Tokens: compact JWS, HS256 only,
// HMAC-SHA256 from OpenSSL (libcrypto), compared in constant time.
//
//   auto r = gateway::verify_jwt(token, secret, gateway::unix_now());
//   if (r) use(r.id()); else reject(r.error());
//
// Refused: anything but three base64url parts, a header whose `alg` is not
// "HS256" (`none` included), a bad signature, a payload that is not a JSON
// object, an `exp` in the past, an `nbf` in the future, an `id` that is not a
// non-empty string. Pure (no I/O); `now` is given so tests control time.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace gateway {

/// Seconds since the Unix epoch, the unit of `exp` and `nbf`.
inline std::int64_t unix_now() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

/// A verified token's payload, or why the token was refused.
class jwt_result {
public:
    static jwt_result success(boost::json::object payload, std::string id, std::optional<double> exp = {}) {
        jwt_result r;
        r.payload_ = std::move(payload);
        r.id_ = std::move(id);
        r.exp_ = exp;
        r.ok_ = true;
        return r;
    }
    static jwt_result failure(std::string why) {
        jwt_result r;
        r.error_ = std::move(why);
        return r;
    }

    explicit operator bool() const noexcept { return ok_; }
    std::string const& id() const noexcept { return id_; }
    boost::json::object const& payload() const noexcept { return payload_; }
    /// The token's `exp` (seconds since the Unix epoch, RFC 7519 §4.1.4); unset: it does not expire.
    std::optional<double> const& exp() const noexcept { return exp_; }
    std::string const& error() const noexcept { return error_; }

private:
    bool ok_ = false;
    boost::json::object payload_;
    std::string id_;
    std::optional<double> exp_;
    std::string error_;
};

namespace detail {

/// Strict base64url (RFC 7515: no padding, no whitespace, canonical last bits).
inline std::optional<std::string> base64url_decode(std::string_view in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '-') return 62;
        if (c == '_') return 63;
        return -1;
    };
    if (in.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(in.size() * 3 / 4);
    std::uint32_t bits = 0;
    int count = 0;
    for (char c : in) {
        int v = value(c);
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out.push_back(static_cast<char>((bits >> count) & 0xFF));
        }
    }
    // Leftover bits must be zero, so each token has one spelling.
    if (count > 0 && (bits & ((1u << count) - 1)) != 0) return std::nullopt;
    return out;
}

inline std::optional<boost::json::object> json_object(std::string_view text) {
    boost::json::parse_options options;
    options.max_depth = 32;
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec, boost::json::storage_ptr(), options);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.get_object());
}

/// A NumericDate claim: true when absent, false when present and not a number.
inline bool numeric_date(boost::json::object const& o, char const* name, std::optional<double>& out) {
    auto const* v = o.if_contains(name);
    if (!v) return true;
    if (v->is_int64())
        out = static_cast<double>(v->get_int64());
    else if (v->is_uint64())
        out = static_cast<double>(v->get_uint64());
    else if (v->is_double())
        out = v->get_double();
    else
        return false;
    return true;
}

}  // namespace detail

/// Verifies `token` as an HS256 JWT signed with `secret` at time `now` (seconds).
inline jwt_result verify_jwt(std::string_view token, std::string_view secret, std::int64_t now) {
    auto const first = token.find('.');
    auto const second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        return jwt_result::failure("malformed token: not three dot-separated parts");
    auto const header_part = token.substr(0, first);
    auto const payload_part = token.substr(first + 1, second - first - 1);
    auto const signature_part = token.substr(second + 1);

    auto header_text = detail::base64url_decode(header_part);
    if (!header_text) return jwt_result::failure("malformed token: header is not base64url");
    auto header = detail::json_object(*header_text);
    if (!header) return jwt_result::failure("malformed token: header is not a JSON object");
    auto const* alg = header->if_contains("alg");
    if (!alg || !alg->is_string() || alg->get_string() != "HS256")
        return jwt_result::failure("unsupported algorithm: only HS256 is accepted");

    auto signature = detail::base64url_decode(signature_part);
    if (!signature) return jwt_result::failure("malformed token: signature is not base64url");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_size = 0;
    auto const signed_part = token.substr(0, second);
    // An empty key is still a key: HMAC() needs a non-null pointer for it.
    static char const empty = 0;
    if (!HMAC(EVP_sha256(), secret.empty() ? &empty : secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<unsigned char const*>(signed_part.data()), signed_part.size(), mac, &mac_size))
        return jwt_result::failure("cannot compute HMAC-SHA256");
    if (signature->size() != mac_size || CRYPTO_memcmp(signature->data(), mac, mac_size) != 0)
        return jwt_result::failure("bad signature");

    auto payload_text = detail::base64url_decode(payload_part);
    if (!payload_text) return jwt_result::failure("malformed token: payload is not base64url");
    auto payload = detail::json_object(*payload_text);
    if (!payload) return jwt_result::failure("malformed token: payload is not a JSON object");

    std::optional<double> exp, nbf;
    if (!detail::numeric_date(*payload, "exp", exp)) return jwt_result::failure("malformed token: exp is not a number");
    if (!detail::numeric_date(*payload, "nbf", nbf)) return jwt_result::failure("malformed token: nbf is not a number");
    if (exp && static_cast<double>(now) >= *exp) return jwt_result::failure("token expired");
    if (nbf && static_cast<double>(now) < *nbf) return jwt_result::failure("token not valid yet (nbf)");

    auto const* id = payload->if_contains("id");
    if (!id || !id->is_string() || id->get_string().empty())
        return jwt_result::failure("token payload has no id (a non-empty string)");
    std::string id_text(id->get_string());
    return jwt_result::success(std::move(*payload), std::move(id_text), exp);
}

}  // namespace gateway
