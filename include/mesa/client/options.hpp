#pragma once
// The options of mesa::client and mesa::tls_client common to ws:// and
// wss://, each with its default, and the options of authenticate().
//
//   mesa::client::options o;
//   o.fallback_reconnect_interval = std::chrono::seconds(2);
#include <chrono>
#include <cstddef>
#include <mesa/version.hpp>
#include <optional>
#include <string>

namespace mesa {

/// Tunables of mesa::client (client::options), each with its default.
struct client_options {
    bool auto_connect = true;       // connect on the first turn of the io_context, as the reference does
    std::size_t max_queued = 1000;  // messages held while disconnected; past it send() drops
    bool reauthenticate = true;     // re-send the last credentials after every reconnection
    std::chrono::milliseconds authentication_timeout{
        10000};                                            // op 2 unanswered this long fails authenticate(); 0: never
    std::string version = version_string;                  // announced as CLIENT_VERSION under enforce_equal_versions
    std::size_t max_stored_messages = 1000;                // per list under store_messages; the oldest is dropped
    std::chrono::milliseconds max_reconnect_delay{30000};  // cap of the exponential backoff
    double reconnect_jitter = 0.2;                         // each delay scaled by a random factor in [0.8, 1.2]
    std::optional<std::chrono::milliseconds>
        fallback_reconnect_interval;          // reconnect even when the hello does not ask to
    std::size_t max_frame_bytes = 16u << 20;  // larger frames close the connection with 1009
    // Credentials that expire are refreshed (client::on_refresh) this long
    // before their expiry, at most half their remaining life before it.
    std::chrono::milliseconds refresh_ahead{30000};
};

/// Options of client::authenticate().
struct client_authenticate_options {
    bool should_sync = true;  // `shouldSync`: false drops the messages synced while offline
    // When the credentials expire; unset: the `exp` of their `token` when it is a JWT, else never.
    std::optional<std::chrono::system_clock::time_point> expires_at;
};

}  // namespace mesa
