#pragma once
// The wss:// client socket policy: websocketpp's Asio TLS socket (OpenSSL via
// standalone asio::ssl) and how a client authenticates the server: one client
// context per mesa::tls_client, built (and its files read) in the client's
// constructor, shared by all its connections.
// tls.hpp relies on websocketpp's transport headers having been included
// before it (as websocketpp/config/asio.hpp does): our plain configuration
// does, and sorts first.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <asio/ssl/context.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/verify_context.hpp>
#include <asio/ssl/verify_mode.hpp>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <mesa/client/tls_options.hpp>
#include <mesa/transport/detail/websocketpp_client_config.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <websocketpp/transport/asio/security/tls.hpp>

namespace mesa::transport::detail {

template <>
struct websocketpp_client_socket<websocketpp::transport::asio::tls_socket::endpoint> {
    using options = tls_client_options;
    static constexpr char const* scheme = "wss";
    static constexpr char const* client_name = "mesa::tls_client";
    static constexpr char const* wrong_scheme_hint = "use mesa::client for ws:// URLs";

    class security {
    public:
        /// Throws std::invalid_argument (half a client certificate, a key
        /// not matching it) or std::system_error (a file that cannot be read
        /// or parsed), each naming the option and the file.
        security(options const& o, std::string const& host)
            : failure_(std::make_shared<std::string>()), context_(make_context(o.tls, host)) {}

        /// websocketpp sets SNI to the URL's host itself (SSL_set_tlsext_host_name
        /// in its tls_socket pre_init), so the context is all it needs.
        template <class Endpoint>
        void prepare(Endpoint& endpoint) {
            endpoint.set_tls_init_handler([ctx = context_](websocketpp::connection_hdl) { return ctx; });
        }
        void on_attempt() { failure_->clear(); }
        std::string failure() const { return *failure_; }

    private:
        std::shared_ptr<asio::ssl::context> make_context(client_tls_options const& o, std::string const& host) {
            auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
            // TLS 1.2 and 1.3 only, no TLS-level compression (CRIME), as our server.
            ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                             asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                             asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression);
            SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);

            asio::error_code ec;
            if (o.verify_peer) {
                if (o.ca_file.empty()) {
                    ctx->set_default_verify_paths(ec);
                    if (ec) throw std::system_error(ec, "mesa::tls_client: cannot load the system's trusted CAs");
                } else {
                    require_readable("tls.ca_file", o.ca_file);
                    ctx->load_verify_file(o.ca_file, ec);
                    if (ec) fail(ec, "tls.ca_file", o.ca_file);
                }
                ctx->set_verify_mode(asio::ssl::verify_peer);
                ctx->set_verify_callback(verifier{host, !o.ca_file.empty(), failure_});
            } else {
                ctx->set_verify_mode(asio::ssl::verify_none);
            }

            bool const has_cert = !o.certificate_chain_file.empty();
            bool const has_key = !o.private_key_file.empty();
            if (has_cert != has_key)
                throw std::invalid_argument(
                    "mesa::tls_client: tls.certificate_chain_file and tls.private_key_file go "
                    "together (both or neither)");
            if (has_cert) {
                require_readable("tls.certificate_chain_file", o.certificate_chain_file);
                require_readable("tls.private_key_file", o.private_key_file);
                ctx->use_certificate_chain_file(o.certificate_chain_file, ec);
                if (ec) fail(ec, "tls.certificate_chain_file", o.certificate_chain_file);
                ctx->use_private_key_file(o.private_key_file, asio::ssl::context::pem, ec);
                if (ec) fail(ec, "tls.private_key_file", o.private_key_file);
                if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
                    throw std::invalid_argument("mesa::tls_client: tls.private_key_file '" + o.private_key_file +
                                                "' does not match tls.certificate_chain_file '" +
                                                o.certificate_chain_file + "'");
            }
            return ctx;
        }

        /// OpenSSL's chain verification, then the host name against the leaf
        /// certificate; records why it refused, since websocketpp reports
        /// every handshake failure as the same "TLS handshake failed".
        struct verifier {
            std::string host;
            bool own_ca;
            std::shared_ptr<std::string> failure;

            bool operator()(bool preverified, asio::ssl::verify_context& vc) const {
                if (!preverified) {
                    int const error = X509_STORE_CTX_get_error(vc.native_handle());
                    *failure = std::string("certificate verification failed: ") + X509_verify_cert_error_string(error);
                    if (untrusted_issuer(error))
                        *failure += own_ca ? " (not signed by a CA of tls.ca_file)"
                                           : " (not signed by a CA of the system's trust store; "
                                             "set tls.ca_file to the CA that signed it)";
                    return false;
                }
                if (!asio::ssl::host_name_verification(host)(preverified, vc)) {
                    *failure =
                        "certificate verification failed: the server's certificate is "
                        "not valid for the host name " +
                        host;
                    return false;
                }
                return true;
            }

            static bool untrusted_issuer(int error) {
                return error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                       error == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
                       error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                       error == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
            }
        };

        static void require_readable(char const* what, std::string const& path) {
            std::FILE* f = std::fopen(path.c_str(), "rb");
            if (!f) {
                int const error = errno;
                throw std::system_error(error, std::generic_category(),
                                        std::string("mesa::tls_client: cannot read ") + what + " '" + path + "'");
            }
            std::fclose(f);
        }

        [[noreturn]] static void fail(asio::error_code const& ec, char const* what, std::string const& path) {
            throw std::system_error(ec, std::string("mesa::tls_client: cannot load ") + what + " '" + path + "'");
        }

        std::shared_ptr<std::string> failure_;  // shared with the verify callback, which
                                                // connections may run after the client is gone
        std::shared_ptr<asio::ssl::context> context_;
    };
};

}  // namespace mesa::transport::detail
