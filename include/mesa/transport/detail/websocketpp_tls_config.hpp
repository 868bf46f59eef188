#pragma once
// Our websocketpp configuration on websocketpp's Asio TLS socket (OpenSSL via
// standalone asio::ssl), and how a TLS endpoint is set up: one server
// context, loaded once at start(), shared by every connection.
// Our plain configuration first: tls.hpp relies on websocketpp's transport
// headers having been included before it (as websocketpp/config/asio.hpp does).
#include <mesa/transport/detail/websocketpp_config.hpp>

#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <websocketpp/transport/asio/security/tls.hpp>

#include <asio/ssl/context.hpp>
#include <asio/ssl/verify_mode.hpp>

#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mesa::transport::detail {

/// The wss:// configuration: the plain one with the TLS socket policy.
using websocketpp_tls_config = basic_websocketpp_config<websocketpp::transport::asio::tls_socket::endpoint>;

template <>
struct websocketpp_socket<websocketpp::transport::asio::tls_socket::endpoint> {
    /// PEM file paths, read at start().
    struct options {
        std::string certificate_chain_file;  // the server certificate, then its intermediates
        std::string private_key_file;        // the key of that certificate (unencrypted)
        // Set: clients must present a certificate signed by one of these CAs.
        std::optional<std::string> ca_file;
    };
    static constexpr char const* scheme = "wss";

    template <class Endpoint>
    static void prepare(Endpoint& endpoint, options const& o) {
        std::shared_ptr<asio::ssl::context> ctx = make_context(o);
        endpoint.set_tls_init_handler([ctx](websocketpp::connection_hdl) { return ctx; });
    }

    /// A server context for `o`; throws std::invalid_argument (empty path,
    /// key not matching the certificate) or std::system_error (a file that
    /// cannot be read or parsed), each naming the file.
    static std::shared_ptr<asio::ssl::context> make_context(options const& o) {
        require_readable("certificate_chain_file", o.certificate_chain_file);
        require_readable("private_key_file", o.private_key_file);
        if (o.ca_file) require_readable("ca_file", *o.ca_file);

        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        // TLS 1.2 and 1.3 only, no TLS-level compression (CRIME).
        ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                         asio::ssl::context::no_compression | asio::ssl::context::single_dh_use);
        SSL_CTX* native = ctx->native_handle();
        SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
        // TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate",
        // minus DHE, which would need parameters); TLS 1.3 keeps OpenSSL's.
        SSL_CTX_set_cipher_list(native,
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");

        asio::error_code ec;
        ctx->use_certificate_chain_file(o.certificate_chain_file, ec);
        if (ec) fail(ec, "certificate_chain_file", o.certificate_chain_file);
        ctx->use_private_key_file(o.private_key_file, asio::ssl::context::pem, ec);
        if (ec) fail(ec, "private_key_file", o.private_key_file);
        if (SSL_CTX_check_private_key(native) != 1) {
            throw std::invalid_argument("mesa: TLS private_key_file '" + o.private_key_file +
                                        "' does not match certificate_chain_file '" + o.certificate_chain_file + "'");
        }
        if (o.ca_file) {
            ctx->load_verify_file(*o.ca_file, ec);
            if (ec) fail(ec, "ca_file", *o.ca_file);
            // Tells clients which CAs are accepted.
            if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file->c_str()))
                SSL_CTX_set_client_CA_list(native, names);
            ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
        } else {
            ctx->set_verify_mode(asio::ssl::verify_none);
        }
        return ctx;
    }

private:
    static void require_readable(char const* what, std::string const& path) {
        if (path.empty()) throw std::invalid_argument(std::string("mesa: TLS ") + what + " is empty");
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) {
            int const error = errno;
            throw std::system_error(error, std::generic_category(),
                                    std::string("mesa: cannot read TLS ") + what + " '" + path + "'");
        }
        std::fclose(f);
    }

    [[noreturn]] static void fail(asio::error_code const& ec, char const* what, std::string const& path) {
        throw std::system_error(ec, std::string("mesa: cannot load TLS ") + what + " '" + path + "'");
    }
};

}  // namespace mesa::transport::detail
