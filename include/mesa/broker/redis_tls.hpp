#pragma once
// Redis over TLS (rediss://) for mesa::broker::redis: asio::ssl (OpenSSL)
// around the same connection. Kept out of <mesa/broker/redis.hpp> so that a
// plain-TCP Redis user needs no OpenSSL; link libssl and libcrypto (meson
// dependency `mesa-tls`, CMake mesa::tls, pkg-config mesa-cpp-tls).
//
//   mesa::broker::redis::options o;
//   o.uri = "rediss://:secret@redis.example.com:6380";
//   o.tls = mesa::broker::redis_tls({"/etc/mesa/redis-ca.pem"});  // empty: the system's trust store
//
// Verification is on by default: the server's certificate must chain to a
// trusted CA and name the host connected to (a DNS subject alternative name,
// or an IP one when the host is an address, as sentinels report masters) or
// `server_name` when set, which is also sent as SNI (RFC 6066 sends no IP
// address). TLS 1.2 or later. Handshake failures are logged with the reason:
// untrusted, wrong host, expired, client certificate required; with TLS 1.3
// a refused or missing client certificate shows on the first read, and is
// reported the same way.
//
// Thread-safety: redis_tls() may be called anywhere; the factory it returns is
// immutable and may be shared by brokers on several threads (OpenSSL 1.1+
// contexts are safe to share once configured).
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/ip/address.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <mesa/broker/detail/redis_stream.hpp>

namespace mesa::broker {

/// What redis_tls() needs: PEM file paths, all optional.
struct redis_tls_options {
    /// CAs that sign the server's certificate; empty: the system's trust store.
    std::string ca_file;
    /// Client certificate (chain) and its private key, for a Redis with
    /// tls-auth-clients yes: both or neither.
    std::string cert_file;
    std::string key_file;
    /// Name to verify the certificate against and to send as SNI, instead of
    /// the host connected to (e.g. when sentinels report IP addresses).
    std::string server_name;
    /// False: no verification of the server's certificate. For tests only;
    /// the broker logs a warning.
    bool verify = true;
};

namespace detail {

class redis_tls_stream final : public redis_stream, public std::enable_shared_from_this<redis_tls_stream> {
public:
    redis_tls_stream(asio::any_io_executor executor, std::shared_ptr<asio::ssl::context> context,
                     std::string const& server_name, bool has_certificate)
        : context_(std::move(context)),
          stream_(executor, *context_),
          ssl_(stream_.native_handle()),
          server_name_(server_name),
          has_certificate_(has_certificate) {}

    socket_type& socket() noexcept override { return stream_.next_layer(); }

    void async_handshake(std::string const& host, handshake_handler done) override {
        name_ = server_name_.empty() ? host : server_name_;
        std::error_code not_ip;
        (void)asio::ip::make_address(name_, not_ip);
        // OpenSSL checks the name during chain verification, so a mismatch
        // has its own verify result (X509_V_ERR_HOSTNAME_MISMATCH...).
        if (!not_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name_.c_str());
        } else {
            SSL_set_tlsext_host_name(ssl_, name_.c_str());
            SSL_set1_host(ssl_, name_.c_str());
        }
        stream_.async_handshake(asio::ssl::stream_base::client,
                                [self = shared_from_this(), done = std::move(done)](std::error_code ec) { done(ec); });
    }

    void async_read_some(asio::mutable_buffer buffer, io_handler done) override {
        stream_.async_read_some(buffer, [self = shared_from_this(), done = std::move(done)](
                                            std::error_code ec, std::size_t n) { done(ec, n); });
    }

    void async_write(asio::const_buffer buffer, io_handler done) override {
        asio::async_write(
            stream_, buffer,
            [self = shared_from_this(), done = std::move(done)](std::error_code ec, std::size_t n) { done(ec, n); });
    }

    std::string explain(std::error_code ec) const override {
        if (ec == asio::ssl::error::stream_truncated) return "closed by the server";
        if (ec.category() != asio::error::get_ssl_category()) return ec.message();
        switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
            case SSL_R_CERTIFICATE_VERIFY_FAILED:
                return certificate_problem();
            case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
                return client_certificate_required();
            case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
                // TLS 1.2 servers answer a missing client certificate this way,
                // as they do when no protocol or cipher is common.
                if (!has_certificate_)
                    return client_certificate_required() + " (or no TLS version or cipher in common: " + ec.message() +
                           ")";
                break;
            case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
            case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
                return "the server refused the client certificate (" + ec.message() + ")";
            case SSL_R_WRONG_VERSION_NUMBER:
            case SSL_R_PACKET_LENGTH_TOO_LONG:
                return "the server does not speak TLS (" + ec.message() + "): a plain redis:// port?";
            default:
                break;
        }
        return ec.message();
    }

private:
    std::string client_certificate_required() const {
        return has_certificate_ ? "the server requires a client certificate and refused this one"
                                : "the server requires a client certificate (tls-auth-clients) and none is configured";
    }

    std::string certificate_problem() const {
        long const result = SSL_get_verify_result(ssl_);
        std::string const detail = X509_verify_cert_error_string(result);
        switch (result) {
            case X509_V_ERR_HOSTNAME_MISMATCH:
            case X509_V_ERR_IP_ADDRESS_MISMATCH:
                return "wrong host: the server's certificate does not name '" + name_ + "' (" + detail + ")";
            case X509_V_ERR_CERT_HAS_EXPIRED:
                return "expired: the server's certificate has expired (" + detail + ")";
            case X509_V_ERR_CERT_NOT_YET_VALID:
                return "not yet valid: the server's certificate is not valid yet (" + detail + ")";
            case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
            case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
            case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            case X509_V_ERR_CERT_UNTRUSTED:
                return "untrusted: the server's certificate is not signed by a trusted CA (" + detail + ")";
            default:
                return "the server's certificate was refused (" + detail + ")";
        }
    }

    std::shared_ptr<asio::ssl::context> context_;  // outlives the stream's SSL object
    asio::ssl::stream<socket_type> stream_;
    SSL* ssl_;  // stream_'s
    std::string server_name_;
    bool has_certificate_;
    std::string name_;  // verified against
};

class redis_tls_factory final : public redis_stream_factory {
public:
    explicit redis_tls_factory(redis_tls_options const& o)
        : context_(std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client)),
          server_name_(o.server_name),
          has_certificate_(!o.cert_file.empty()),
          verify_(o.verify) {
        if (o.cert_file.empty() != o.key_file.empty())
            throw std::invalid_argument(
                "redis TLS: a client certificate needs its key and a key its certificate "
                "(give both cert_file and key_file, or neither)");
        SSL_CTX_set_min_proto_version(context_->native_handle(), TLS1_2_VERSION);
        context_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
        load("ca_file", o.ca_file, [&](std::error_code& ec) {
            if (o.ca_file.empty())
                context_->set_default_verify_paths(ec);
            else
                context_->load_verify_file(o.ca_file, ec);
        });
        load("cert_file", o.cert_file, [&](std::error_code& ec) {
            if (!o.cert_file.empty()) context_->use_certificate_chain_file(o.cert_file, ec);
        });
        load("key_file", o.key_file, [&](std::error_code& ec) {
            if (!o.key_file.empty()) context_->use_private_key_file(o.key_file, asio::ssl::context::pem, ec);
        });
        context_->set_verify_mode(verify_ ? asio::ssl::verify_peer : asio::ssl::verify_none);
    }

    std::shared_ptr<redis_stream> make(asio::any_io_executor executor) const override {
        return std::make_shared<redis_tls_stream>(std::move(executor), context_, server_name_, has_certificate_);
    }
    bool verifies_peer() const noexcept override { return verify_; }

private:
    template <class Load>
    static void load(char const* what, std::string const& path, Load load) {
        std::error_code ec;
        load(ec);
        if (ec)
            throw std::invalid_argument(std::string("redis TLS: ") + what + " '" +
                                        (path.empty() ? "(system trust store)" : path) + "': " + ec.message());
    }

    std::shared_ptr<asio::ssl::context> context_;
    std::string server_name_;
    bool has_certificate_;
    bool verify_;
};

}  // namespace detail

/// The TLS settings of mesa::broker::redis::options::tls. Throws
/// std::invalid_argument naming the file that cannot be read or used, or a
/// certificate given without its key.
inline std::shared_ptr<detail::redis_stream_factory const> redis_tls(redis_tls_options const& options = {}) {
    return std::make_shared<detail::redis_tls_factory>(options);
}

}  // namespace mesa::broker
