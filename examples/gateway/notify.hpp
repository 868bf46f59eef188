#pragma once
// The service manager's readiness protocol (systemd's sd_notify, without
// libsystemd): one datagram such as "READY=1" to the unix socket named by
// $NOTIFY_SOCKET, a path or, starting with '@', a name in the abstract namespace.
//
//   gateway::notify("READY=1");     // once listening
//   gateway::notify("STOPPING=1");  // when shutdown begins
//
// Nothing happens when NOTIFY_SOCKET is unset; a failure is returned, never thrown.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

namespace gateway {

/// Sends `state` to `socket_path` ('@' first: abstract namespace). Returns the error, if any.
inline std::error_code notify_to(std::string const& socket_path, std::string const& state) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path ||
        (socket_path[0] != '/' && socket_path[0] != '@'))
        return std::make_error_code(std::errc::invalid_argument);
    std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
    if (socket_path[0] == '@') address.sun_path[0] = '\0';
    auto const length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());
    int const fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return {errno, std::generic_category()};
    std::error_code ec;
    if (::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr const*>(&address), length) < 0)
        ec = {errno, std::generic_category()};
    ::close(fd);
    return ec;
}

/// Sends `state` to $NOTIFY_SOCKET when it is set.
inline std::error_code notify(std::string const& state) {
    char const* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) return {};
    return notify_to(path, state);
}

}  // namespace gateway
