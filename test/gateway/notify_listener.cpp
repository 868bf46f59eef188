// A stand-in for the service manager's notification socket, for the gateway's
// process tests: binds a unix datagram socket at argv[1] (a path, or '@name'
// for the abstract namespace), prints "bound" once it can receive, then one
// line per datagram received, until killed.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: notify_listener PATH|@NAME\n");
        return 2;
    }
    std::string const name = argv[1];
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (name.empty() || name.size() >= sizeof address.sun_path) return 2;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name[0] == '@') address.sun_path[0] = '\0';
    int const fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address),
                         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) != 0) {
        std::perror("notify_listener: bind");
        return 1;
    }
    std::printf("bound\n");
    std::fflush(stdout);
    char buffer[4096];
    for (;;) {
        auto const n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n < 0) return 1;
        std::fwrite(buffer, 1, static_cast<std::size_t>(n), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
}
