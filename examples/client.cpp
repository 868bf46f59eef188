// mesa-client: like wscat, but speaking Mesa. For people debugging a Mesa
// deployment (ours or the Node reference).
//
//   mesa-client ws://localhost:4500 --token "$JWT"
//   PING {"n": 1}                         <- stdin: one message per line, TYPE {json data}
//   {"op":0,"d":{"n":1},"t":"PONG"}       -> stdout: every op 0 received, one JSON line
//
// wss:// URLs go through mesa::tls_client, which verifies the server's
// certificate (--ca FILE, else the system's trust store) unless --insecure.
//
// Status lines (connected, authenticated, disconnected, reconnecting) go to
// stderr. Exit codes: 0 at end of input once everything queued was sent (and,
// with credentials, once authenticated); 1 connection failed or closed with
// no reconnection coming; 2 bad usage, URL or TLS file; 3 authentication failed.
#include <cstddef>  // before Asio: see <mesa/detail/config.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mesa/client.hpp>
#include <mesa/client_tls.hpp>
#include <mesa/version.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

#include <CLI/CLI.hpp>

#include "common/secrets.hpp"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_connection = 1;
constexpr int exit_usage = 2;
constexpr int exit_authentication = 3;

char const usage[] =
    "usage: mesa-client URL [--token JWT | --token-file FILE | --auth JSON] [--no-sync] [--reconnect MS]\n"
    "                       [--linger MS] [--client-version V] [--ca FILE] [--cert FILE --key FILE] [--insecure]\n"
    "       mesa-client --help | --version\n"
    "\n"
    "Connects to the Mesa server at URL (ws:// or wss://host[:port][/path]), prints every op 0\n"
    "message received as one JSON line on stdout, status lines on stderr, and sends\n"
    "one message per stdin line written as `TYPE {json data}` (data defaults to {};\n"
    "a line starting with '{' is sent as a whole {op,d,t} frame; '#' starts a comment).\n"
    "\n"
    "  --token JWT     authenticate with {\"token\": JWT} on every (re)connection; else $MESA_TOKEN,\n"
    "                  else the file named by $MESA_TOKEN_FILE (kept off the command line)\n"
    "  --token-file FILE  the same, with the JWT read from FILE\n"
    "  --auth JSON     authenticate with this JSON object on every (re)connection\n"
    "  --no-sync       authenticate with shouldSync false (drop messages stored while offline)\n"
    "  --reconnect MS  reconnect after MS even when the server does not advertise reconnects\n"
    "  --linger MS     at end of input, keep printing messages for MS before disconnecting\n"
    "  --client-version V  version announced under enforce_equal_versions (default: this library's\n"
    "                  version)\n"
    "  --version       print the tool's version and exit\n"
    "Options take their value as --opt VALUE or --opt=VALUE.\n"
    "\n"
    "wss:// only (the certificate must be signed by a trusted CA and name the URL's host):\n"
    "  --ca FILE       trust the CAs of this PEM file instead of the system's trust store\n"
    "                  (OpenSSL's default paths, or $SSL_CERT_FILE / $SSL_CERT_DIR when set)\n"
    "  --cert FILE     present this PEM certificate chain (servers that require one); with --key\n"
    "  --key FILE      the unencrypted PEM private key of --cert\n"
    "  --insecure      do not verify the server's certificate nor its name: encrypted but not\n"
    "                  authenticated, anyone on the path can read and change the traffic\n"
    "\n"
    "Exit codes: 0 end of input, everything sent; 1 connection failed or closed for good;\n"
    "2 bad usage, URL or TLS file; 3 authentication failed.\n";

[[noreturn]] void quit(int code) {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(code);  // the stdin reader thread may still be blocked in a read
}

void status(std::string const& text) { std::cerr << "mesa-client: " << text << std::endl; }

std::optional<long> milliseconds_arg(char const* text) {
    char* end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (!*text || *end || v < 0) return std::nullopt;
    return v;
}

/// `TYPE {json}` or a whole `{op,d,t}` frame; an error message otherwise.
std::variant<mesa::message, std::string> parse_line(std::string const& line) {
    if (line.front() == '{') {
        auto r = mesa::parse(line);
        if (!r) return "not a Mesa message: " + r.error().reason;
        return std::move(r.value());
    }
    auto const space = line.find_first_of(" \t");
    std::string type = line.substr(0, space);
    mesa::json::object data;
    if (space != std::string::npos) {
        auto const first = line.find_first_not_of(" \t", space);
        if (first != std::string::npos) {
            boost::system::error_code ec;
            auto v = mesa::json::parse(std::string_view(line).substr(first), ec);
            if (ec) return "data of " + type + " is not JSON: " + ec.message();
            if (!v.is_object()) return "data of " + type + " must be a JSON object";
            data = std::move(v.get_object());
        }
    }
    return mesa::message(std::move(type), std::move(data));
}

/// Everything the command line sets, for either client.
struct settings {
    std::optional<mesa::json::object> credentials;
    mesa::client_options options;
    mesa::client_tls_options tls;
    mesa::client_authenticate_options auth_options;
    long linger_ms = 0;
};

template <class Client>
typename Client::options client_options(settings const& set) {
    if constexpr (std::is_same_v<Client, mesa::tls_client>) {
        mesa::tls_client::options o;
        static_cast<mesa::client_options&>(o) = set.options;
        o.tls = set.tls;
        return o;
    } else {
        return set.options;
    }
}

/// Runs the tool with `Client` (mesa::client or mesa::tls_client) until it quits.
template <class Client>
int run(std::string const& url, settings const& set) {
    asio::io_context ioc;
    std::unique_ptr<Client> owned;
    try {
        owned = std::make_unique<Client>(ioc, url, client_options<Client>(set));
    } catch (std::exception const& e) {  // a bad URL, or a TLS file that cannot be used
        std::cerr << "mesa-client: " << e.what() << "\n";
        return exit_usage;
    }
    Client& c = *owned;
    auto const& credentials = set.credentials;

    bool ever_connected = false;
    bool leaving = false;  // our own disconnect() at the end
    bool authenticated_once = false;
    asio::steady_timer poll(ioc);

    c.on_connected([&](typename Client::connection_info const& info) {
        ever_connected = true;
        status("connected to " + c.url() + (info.is_automatic_reconnection ? " (automatic reconnection)" : ""));
    });
    c.on_authenticated([&](mesa::json::value const& user) {
        authenticated_once = true;
        status("authenticated as " + mesa::json::serialize(user));
    });
    c.on_message([](mesa::message const& m) {
        if (m.op == mesa::opcode::dispatch) std::cout << mesa::serialize(m) << std::endl;
    });
    c.on_disconnected([&](typename Client::disconnection const& d) {
        status("disconnected (" + std::to_string(d.code) + (d.reason.empty() ? "" : " " + d.reason) + ")" +
               (d.will_attempt_reconnect ? "; reconnecting" : ""));
        if (leaving) quit(exit_ok);
        if (!d.will_attempt_reconnect) {
            status("connection closed and no reconnection coming");
            quit(exit_connection);
        }
    });
    c.on_error([&](typename Client::error const& e) {
        using kind = typename Client::error_kind;
        if (e.kind == kind::connection_failed) {
            if (!c.reconnecting()) {
                // A refused certificate says why itself; anything else before
                // a first open is most often nothing listening at the URL.
                bool const hint = !ever_connected && e.what.find("certificate") == std::string::npos;
                status(e.what + (hint ? " (is a Mesa server listening there?)" : ""));
                quit(exit_connection);
            }
            status(e.what + "; reconnecting");
        } else if (e.kind == kind::authentication) {
            status("authentication failed: " + e.what);
            quit(exit_authentication);
        } else {
            status("warning: " + e.what);
        }
    });

    if (credentials) {
        c.authenticate(
            *credentials,
            [&](typename Client::authentication_result const& r) {
                if (r) return;  // reported by on_authenticated
                if (leaving) return;
                // A close unrelated to the credentials while a reconnection is
                // coming: they are sent again then.
                if (r.close_code != mesa::close_code::policy_violation && r.close_code != 0 && c.reconnecting()) return;
                status("authentication failed: " + *r.error);
                quit(exit_authentication);
            },
            set.auth_options);
    }

    // The end: everything queued written to the socket (and authenticated
    // when credentials were given), then linger, then a clean 1000.
    std::function<void()> check_done = [&] {
        if (leaving) return;
        if (c.flushed() && (!credentials || authenticated_once)) {
            leaving = true;
            poll.expires_after(std::chrono::milliseconds(set.linger_ms));
            poll.async_wait([&](std::error_code ec) {
                if (ec) return;
                c.disconnect();
                // Give the close handshake a moment, not forever.
                poll.expires_after(std::chrono::seconds(2));
                poll.async_wait([](std::error_code e) {
                    if (!e) quit(exit_ok);
                });
            });
            return;
        }
        poll.expires_after(std::chrono::milliseconds(10));
        poll.async_wait([&](std::error_code ec) {
            if (!ec) check_done();
        });
    };

    // A thread reads stdin (a file, a pipe or a terminal alike) and hands each
    // line to the io_context's thread.
    std::thread([&ioc, &c, &check_done] {
        std::string line;
        std::size_t number = 0;
        while (std::getline(std::cin, line)) {
            ++number;
            asio::post(ioc, [&c, line, number] {
                auto const first = line.find_first_not_of(" \t\r");
                if (first == std::string::npos || line[first] == '#') return;
                auto const last = line.find_last_not_of(" \t\r");
                auto parsed = parse_line(line.substr(first, last - first + 1));
                if (auto* error = std::get_if<std::string>(&parsed)) {
                    status("line " + std::to_string(number) + " ignored: " + *error);
                    return;
                }
                auto const sent = c.send(std::get<mesa::message>(std::move(parsed)));
                if (sent == Client::send_status::queued)
                    status("line " + std::to_string(number) + " queued until connected");
                else if (sent == Client::send_status::dropped)
                    status("line " + std::to_string(number) + " dropped: send queue full");
            });
        }
        asio::post(ioc, [&check_done] { check_done(); });
    }).detach();

    auto guard = asio::make_work_guard(ioc);
    ioc.run();
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<std::string> url;
    settings set;
    mesa::client_options& options = set.options;
    mesa::client_tls_options& tls = set.tls;
    bool tls_flags = false;

    CLI::App app{"mesa-client", "mesa-client"};
    app.set_help_flag();
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one given counts
    bool help = false, version = false, no_sync = false, insecure = false;
    std::optional<std::string> token, token_file, auth, reconnect, linger, client_version, ca, cert, key;
    app.add_flag("-h,--help", help);
    app.add_flag("--version", version);
    app.add_option("url", url);
    app.add_option("--token", token);
    app.add_option("--token-file", token_file);
    app.add_option("--auth", auth);
    app.add_flag("--no-sync", no_sync);
    app.add_option("--reconnect", reconnect);
    app.add_option("--linger", linger);
    app.add_option("--client-version", client_version);
    app.add_option("--ca", ca);
    app.add_option("--cert", cert);
    app.add_option("--key", key);
    app.add_flag("--insecure", insecure);
    try {
        app.parse(argc, argv);
    } catch (CLI::ParseError const& e) {
        std::cerr << "mesa-client: " << e.what() << "\n" << usage;
        return exit_usage;
    }
    if (help) {
        std::cout << usage;
        return exit_ok;
    }
    if (version) {
        std::cout << "mesa-client " << mesa::version_string << "\n";
        return exit_ok;
    }
    try {
        if (token_file) token = tools::read_secret_file("--token-file", *token_file);
        token = tools::secret("MESA_TOKEN", token);
    } catch (std::exception const& e) {
        std::cerr << "mesa-client: " << e.what() << "\n";
        return exit_usage;
    }
    if (token && auth) {
        std::cerr << "mesa-client: --token (or --token-file, MESA_TOKEN) and --auth exclude each other\n";
        return exit_usage;
    }
    if (token) set.credentials = mesa::json::object{{"token", *token}};
    if (auth) {
        boost::system::error_code ec;
        auto v = mesa::json::parse(*auth, ec);
        if (ec || !v.is_object()) {
            std::cerr << "mesa-client: --auth needs a JSON object\n";
            return exit_usage;
        }
        set.credentials = std::move(v.get_object());
    }
    if (no_sync) set.auth_options.should_sync = false;
    for (auto [option, text] : {std::pair{"--reconnect", &reconnect}, std::pair{"--linger", &linger}}) {
        if (!*text) continue;
        auto ms = milliseconds_arg(text->value().c_str());
        if (!ms || (std::string(option) == "--reconnect" && *ms == 0)) {
            std::cerr << "mesa-client: " << option << " needs a number of milliseconds\n";
            return exit_usage;
        }
        if (std::string(option) == "--linger")
            set.linger_ms = *ms;
        else
            options.fallback_reconnect_interval = std::chrono::milliseconds(*ms);
    }
    if (client_version) options.version = *client_version;
    if (ca) tls.ca_file = *ca;
    if (cert) tls.certificate_chain_file = *cert;
    if (key) tls.private_key_file = *key;
    if (insecure) tls.verify_peer = false;
    tls_flags = ca || cert || key || insecure;
    if (!url) {
        std::cerr << usage;
        return exit_usage;
    }
    if (url->rfind("wss://", 0) == 0) {
        if (!tls.verify_peer) status("warning: --insecure: the server's certificate and name are not verified");
        return run<mesa::tls_client>(*url, set);
    }
    if (tls_flags) {
        std::cerr << "mesa-client: --ca, --cert, --key and --insecure apply to wss:// URLs only\n";
        return exit_usage;
    }
    return run<mesa::client>(*url, set);
}
