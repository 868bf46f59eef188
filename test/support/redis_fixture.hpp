#pragma once
// A private redis-server for one test: started on a free port, killed at the
// end. Failing to start it throws, so the test fails loudly rather than skips.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace mesa::test {

/// A TCP port nothing listens on right now (bind to 0, read it, close).
inline std::uint16_t free_port() {
    int const fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("free_port: socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("free_port: bind/getsockname failed");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

/// Runs `argv` and returns its standard output; throws when it cannot start.
inline std::string run_program(std::vector<std::string> const& argv) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe() failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    std::vector<char*> args;
    for (auto const& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    int const rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (rc != 0) {
        ::close(pipe_fds[0]);
        throw std::runtime_error("cannot run " + argv[0]);
    }
    std::string out;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
        out.append(buffer, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

class redis_server {
public:
    /// Starts redis-server on a free port with `extra` arguments (e.g.
    /// {"--requirepass", "secret"}); throws when it does not answer PING.
    explicit redis_server(std::vector<std::string> extra = {}) : port_(free_port()), extra_(std::move(extra)) {
        log_path_ = "/tmp/mesa-redis-test-" + std::to_string(port_) + ".log";
        start();
    }
    ~redis_server() {
        stop(SIGTERM);
        ::unlink(log_path_.c_str());
    }
    redis_server(redis_server const&) = delete;
    redis_server& operator=(redis_server const&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    std::string uri(std::string const& tail = {}) const { return "redis://127.0.0.1:" + std::to_string(port_) + tail; }
    bool running() const noexcept { return pid_ > 0; }

    /// Starts (again) on the same port.
    void start() {
        if (pid_ > 0) return;
        std::vector<std::string> argv{
            "/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
            "--appendonly",          "no",     "--daemonize",         "no",     "--dir",     "/tmp"};
        argv.insert(argv.end(), extra_.begin(), extra_.end());
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        int const rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) {
            pid_ = 0;
            throw std::runtime_error("cannot start /usr/bin/redis-server (posix_spawn error " + std::to_string(rc) +
                                     ")");
        }
        auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!answers_ping()) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = 0;
                throw std::runtime_error("redis-server exited at start on port " + std::to_string(port_) + ":\n" +
                                         server_log());
            }
            if (std::chrono::steady_clock::now() > deadline) {
                stop(SIGKILL);
                throw std::runtime_error("redis-server did not answer PING within 10 s on port " +
                                         std::to_string(port_) + ":\n" + server_log());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    /// Kills the server (SIGKILL by default: an outage, not a shutdown).
    void stop(int signal = SIGKILL) {
        if (pid_ <= 0) return;
        ::kill(pid_, signal);
        auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) != pid_) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        pid_ = 0;
    }

    /// Runs redis-cli against this server: cli({"HGET", "h", "f"}), with
    /// `options` before the command (e.g. {"-n", "1"}).
    std::string cli(std::vector<std::string> const& command, std::vector<std::string> const& options = {}) const {
        std::vector<std::string> argv{"/usr/bin/timeout",  "10", "/usr/bin/redis-cli",
                                      "--no-auth-warning", "-p", std::to_string(port_)};
        argv.insert(argv.end(), options.begin(), options.end());
        argv.insert(argv.end(), command.begin(), command.end());
        return run_program(argv);
    }

    std::string server_log() const {
        std::ifstream in(log_path_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    bool answers_ping() const {
        int const fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return false;
        timeval tv{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port_);
        bool ok = false;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && ::write(fd, "PING\r\n", 6) == 6) {
            char reply[64];
            // +PONG, or -NOAUTH with --requirepass: either way it is serving.
            ssize_t const n = ::read(fd, reply, sizeof reply);
            ok = n > 0 && (reply[0] == '+' || reply[0] == '-');
        }
        ::close(fd);
        return ok;
    }

    std::uint16_t port_;
    std::vector<std::string> extra_;
    std::string log_path_;
    pid_t pid_ = 0;
};

}  // namespace mesa::test
