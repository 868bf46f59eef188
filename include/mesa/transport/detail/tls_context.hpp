#pragma once
// How a wss:// endpoint is set up, shared by the TLS transports
// (websocketpp_tls, asio_tls): the PEM files of its options and one server
// context made from them at start(), shared by every connection.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

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

/// PEM file paths of a TLS server, read at start().
struct tls_files {
    std::string certificate_chain_file;  // the server certificate, then its intermediates
    std::string private_key_file;        // the key of that certificate (unencrypted)
    // Set: clients must present a certificate signed by one of these CAs.
    std::optional<std::string> ca_file;
};

namespace tls_context_detail {

inline void require_readable(char const* what, std::string const& path) {
    if (path.empty()) throw std::invalid_argument(std::string("mesa: TLS ") + what + " is empty");
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        int const error = errno;
        throw std::system_error(error, std::generic_category(),
                                std::string("mesa: cannot read TLS ") + what + " '" + path + "'");
    }
    std::fclose(f);
}

[[noreturn]] inline void fail(asio::error_code const& ec, char const* what, std::string const& path) {
    throw std::system_error(ec, std::string("mesa: cannot load TLS ") + what + " '" + path + "'");
}

}  // namespace tls_context_detail

/// A server context for `o`: TLS 1.2 and 1.3 only, no compression, forward
/// secret AEAD suites, client certificates required when `o.ca_file` is set.
/// Throws std::invalid_argument (empty path, key not matching the
/// certificate) or std::system_error (a file that cannot be read or parsed),
/// each naming the file.
inline std::shared_ptr<asio::ssl::context> make_tls_context(tls_files const& o) {
    using namespace tls_context_detail;
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
        // Without a session id context OpenSSL fails every resumption on a
        // server that verifies its clients: a client reconnecting with its
        // session would be refused (SSL_CTX_set_session_id_context(3)).
        static unsigned char const session_context[] = "mesa-cpp";
        SSL_CTX_set_session_id_context(native, session_context, sizeof session_context - 1);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    return ctx;
}

}  // namespace mesa::transport::detail
