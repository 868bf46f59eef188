#pragma once
// A private redis-server for one test: started on a free port, killed at the
// end; and a private Sentinel deployment (a master, a replica, three
// sentinels). Failing to start them throws, so the test fails loudly rather
// than skips.
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
#include <cstdlib>
#include <fstream>
#include <memory>
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
    /// {"--requirepass", "secret"}), after `config_file` when given (a
    /// sentinel's); throws when it does not answer PING.
    /// With `tls`, port() is a TLS port (--port 0 --tls-port N): `extra` gives
    /// the --tls-*-file arguments.
    explicit redis_server(std::vector<std::string> extra = {}, std::string config_file = {}, bool tls = false)
        : port_(free_port()), extra_(std::move(extra)), config_file_(std::move(config_file)), tls_(tls) {
        log_path_ = "/tmp/mesa-redis-test-" + std::to_string(port_) + ".log";
        start();
    }
    ~redis_server() {
        stop(SIGTERM);
        ::unlink(log_path_.c_str());
        ::unlink(("/tmp/" + rdb_file()).c_str());
    }
    redis_server(redis_server const&) = delete;
    redis_server& operator=(redis_server const&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    std::string uri(std::string const& tail = {}) const { return "redis://127.0.0.1:" + std::to_string(port_) + tail; }
    bool running() const noexcept { return pid_ > 0; }

    /// Sends `signal` (e.g. SIGSTOP, SIGCONT) to the running server.
    void signal(int signal) {
        if (pid_ > 0) ::kill(pid_, signal);
    }

    /// Starts (again) on the same port.
    void start() {
        if (pid_ > 0) return;
        std::vector<std::string> argv{"/usr/bin/redis-server"};
        if (!config_file_.empty()) argv.push_back(config_file_);
        // Its own RDB file: a replica writes one at each full sync, and a server
        // started later must not load another's.
        for (std::string a : {"--port", "", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize",
                              "no", "--dir", "/tmp", "--dbfilename", ""})
            argv.push_back(a.empty() && argv.back() == "--port" ? (tls_ ? "0" : std::to_string(port_)) : a);
        if (config_file_.empty())
            argv.back() = rdb_file();
        else
            argv.resize(argv.size() - 2);
        if (tls_) argv.insert(argv.end(), {"--tls-port", std::to_string(port_)});
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
    /// `options` before the command (e.g. {"-n", "1"}); over TLS trusting the
    /// server's --tls-ca-cert-file when it serves TLS.
    std::string cli(std::vector<std::string> const& command, std::vector<std::string> const& options = {}) const {
        std::vector<std::string> argv{"/usr/bin/timeout",  "10", "/usr/bin/redis-cli",
                                      "--no-auth-warning", "-p", std::to_string(port_)};
        if (tls_)
            for (std::size_t i = 0; i + 1 < extra_.size(); ++i)
                if (extra_[i] == "--tls-ca-cert-file") argv.insert(argv.end(), {"--tls", "--cacert", extra_[i + 1]});
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
    std::string rdb_file() const { return "mesa-redis-test-" + std::to_string(port_) + ".rdb"; }

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
        // A TLS port that accepts is serving: TLS itself is what the tests check.
        if (tls_)
            ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        else if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                 ::write(fd, "PING\r\n", 6) == 6) {
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
    std::string config_file_;
    std::string log_path_;
    bool tls_ = false;
    pid_t pid_ = 0;
};

/// redis-cli against 127.0.0.1:`port`.
inline std::string redis_cli(std::uint16_t port, std::vector<std::string> const& command) {
    std::vector<std::string> argv{"/usr/bin/timeout",  "10", "/usr/bin/redis-cli",
                                  "--no-auth-warning", "-p", std::to_string(port)};
    argv.insert(argv.end(), command.begin(), command.end());
    return run_program(argv);
}

/// A Redis Sentinel deployment on loopback: a master, a replica and three
/// sentinels (quorum 2) monitoring it as `name`, with short failure detection
/// (down-after 1000 ms) so that failovers take seconds. The sentinels'
/// configuration files live in a temporary directory removed at the end.
/// With `tls` (the --tls-*-file arguments of redis_server), every node and
/// sentinel serves TLS only, and replication and monitoring go over TLS.
class redis_sentinel_group {
public:
    explicit redis_sentinel_group(std::string name = "mymaster", std::vector<std::string> tls = {}, int replicas = 1)
        : name_(std::move(name)) {
        char dir[] = "/tmp/mesa-sentinel-XXXXXX";
        if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
        dir_ = dir;
        bool const secure = !tls.empty();
        if (secure) tls.insert(tls.end(), {"--tls-replication", "yes"});
        std::vector<std::string> data{"--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"};
        data.insert(data.end(), tls.begin(), tls.end());
        nodes_.push_back(std::make_unique<redis_server>(data, std::string(), secure));
        auto replica = data;
        replica.insert(replica.end(), {"--replicaof", "127.0.0.1", std::to_string(nodes_[0]->port())});
        for (int i = 0; i < replicas; ++i)
            nodes_.push_back(std::make_unique<redis_server>(replica, std::string(), secure));
        wait_for("the replicas to sync", [&] {
            auto const info = nodes_[0]->cli({"INFO", "replication"});
            int online = 0;
            for (auto at = info.find("state=online"); at != std::string::npos; at = info.find("state=online", at + 1))
                ++online;
            return online == replicas;
        });
        for (int i = 0; i < 3; ++i) {
            auto const file = dir_ + "/sentinel-" + std::to_string(i) + ".conf";
            std::ofstream conf(file);
            conf << "sentinel monitor " << name_ << " 127.0.0.1 " << nodes_[0]->port() << " 2\n"
                 << "sentinel down-after-milliseconds " << name_ << " 1000\n"
                 << "sentinel failover-timeout " << name_ << " 4000\n"
                 << "sentinel parallel-syncs " << name_ << " 1\n";
            conf.close();
            std::vector<std::string> args{"--sentinel"};
            args.insert(args.end(), tls.begin(), tls.end());
            sentinels_.push_back(std::make_unique<redis_server>(args, file, secure));
        }
        // A failover needs the sentinels to know the replica and each other.
        wait_for("the sentinels to know the replica and each other", [&] {
            for (auto const& s : sentinels_) {
                if (s->cli({"SENTINEL", "replicas", name_}).find(std::to_string(nodes_[1]->port())) ==
                    std::string::npos)
                    return false;
                auto const master = s->cli({"SENTINEL", "master", name_});
                auto const at = master.find("num-other-sentinels\n");
                if (at == std::string::npos || master.substr(at + 20, 1) != "2") return false;
            }
            return true;
        });
    }
    ~redis_sentinel_group() {
        sentinels_.clear();
        nodes_.clear();
        for (int i = 0; i < 3; ++i) ::unlink((dir_ + "/sentinel-" + std::to_string(i) + ".conf").c_str());
        ::rmdir(dir_.c_str());
    }
    redis_sentinel_group(redis_sentinel_group const&) = delete;
    redis_sentinel_group& operator=(redis_sentinel_group const&) = delete;

    std::string const& name() const noexcept { return name_; }
    /// "127.0.0.1:port" of each sentinel.
    std::vector<std::string> sentinel_addresses() const {
        std::vector<std::string> out;
        for (auto const& s : sentinels_) out.push_back("127.0.0.1:" + std::to_string(s->port()));
        return out;
    }
    redis_server& sentinel(std::size_t i) { return *sentinels_.at(i); }
    /// The data node on `port` (the master or the replica).
    redis_server& node(std::uint16_t port) {
        for (auto& n : nodes_)
            if (n->port() == port) return *n;
        throw std::runtime_error("no redis node on port " + std::to_string(port));
    }
    /// The data nodes' ports (the first started as master, the second as its replica).
    std::vector<std::uint16_t> node_ports() const {
        std::vector<std::uint16_t> out;
        for (auto const& n : nodes_) out.push_back(n->port());
        return out;
    }
    /// The master's port as the first running sentinel reports it.
    std::uint16_t master_port() {
        for (auto& s : sentinels_) {
            if (!s->running()) continue;
            auto const reply = s->cli({"SENTINEL", "get-master-addr-by-name", name_});
            auto const newline = reply.find('\n');
            if (newline != std::string::npos) return static_cast<std::uint16_t>(std::stoi(reply.substr(newline + 1)));
        }
        throw std::runtime_error("no sentinel names the master");
    }
    redis_server& master() { return node(master_port()); }
    /// Asks a sentinel for a failover (the master is healthy: a switchover).
    void failover() {
        auto const reply = sentinels_[0]->cli({"SENTINEL", "FAILOVER", name_});
        if (reply != "OK") throw std::runtime_error("SENTINEL FAILOVER: " + reply);
    }

private:
    template <class Done>
    static void wait_for(char const* what, Done done) {
        auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error(std::string("sentinel group: timed out waiting for ") + what);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    std::string name_;
    std::string dir_;
    std::vector<std::unique_ptr<redis_server>> nodes_;
    std::vector<std::unique_ptr<redis_server>> sentinels_;
};

}  // namespace mesa::test
