#pragma once
// The options of mesa::tls_client (<mesa/client_tls.hpp>): those of every
// client plus how the wss:// server is authenticated. Needs no OpenSSL, so
// configuration code can fill them without linking it.
//
//   mesa::tls_client::options o;
//   o.tls.ca_file = "/etc/mesa/ca.pem";  // else the system's trust store
#include <mesa/client/options.hpp>
#include <string>

namespace mesa {

/// How a wss:// client authenticates the server (and, optionally, itself).
/// The certificate chain is verified and must name the URL's host (DNS name
/// or IP address in its subjectAltName) unless verify_peer is false.
struct client_tls_options {
    // PEM file of the CAs to trust; empty: the system's trust store
    // (OpenSSL's default paths, /etc/ssl/certs on Debian).
    std::string ca_file;
    // false accepts ANY certificate for ANY name: the connection is encrypted
    // but not authenticated, so anyone on the path can read and change it.
    // Only for tests against throwaway certificates.
    bool verify_peer = true;
    // A certificate to present, for servers that require one (the server's
    // ca_file); both or neither.
    std::string certificate_chain_file;
    std::string private_key_file;  // the key of that certificate (unencrypted PEM)
};

/// Tunables of mesa::tls_client (tls_client::options).
struct tls_client_options : client_options {
    client_tls_options tls;
};

}  // namespace mesa
