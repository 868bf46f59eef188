// mesa-bare-server: the physical limit of bench/run. A single-threaded epoll
// WebSocket server in plain C++ that does only what the load generator needs
// and nothing a Mesa server must: no Asio, no JSON parser, no features, no
// checks beyond finding the key.
//
//   upgrade   find Sec-WebSocket-Key, answer 101 with its SHA-1/base64 accept
//             (RFC 6455 §4.2.2) and the hello our gateway sends, in one write;
//   echo      a masked text frame holding "t":"PING" goes back as the same
//             bytes with PING turned into PONG (the loadgen's PING carries all
//             the PONG needs); ping → pong, close → close;
//   fan-out   SUBSCRIBE ws on Redis; each publication's "message" object is
//             cut out of the fixed {"message":...,"recipients":[...]} bytes
//             (bench/loadgen publishes that shape), framed once, and every
//             burst (the publications of one Redis read) goes to each client
//             as one write of the joined frames, as the gateway joins them.
//
// Memory per idle connection: a slot of two empty strings; a read buffer is
// shared by all, and only the bytes of an unfinished frame are kept.
//
//   MESA_PORT=4500 REDIS_URI=redis://127.0.0.1:6379 mesa-bare-server
//
// Prints "listening on port N" once listening. A yardstick, not a server.
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view hello = R"({"op":10,"d":{"rules":["sends_user_object"]}})";  // the gateway's, AUTH_TIMEOUT=0
constexpr std::size_t max_request_bytes = 8192;
constexpr std::size_t max_frame_bytes = 1 << 20;
constexpr std::size_t max_backlog_bytes = 1 << 20;  // the gateway's MESA_MAX_BACKLOG default

[[noreturn]] void die(char const* what) {
    std::perror(what);
    std::exit(1);
}

/// Appends an unmasked server frame: FIN + opcode, 7/16/64-bit length, payload.
void append_frame(std::string& out, unsigned opcode, std::string_view payload) {
    char h[10];
    std::size_t n = 2;
    h[0] = static_cast<char>(0x80 | opcode);
    std::uint64_t const len = payload.size();
    if (len < 126) {
        h[1] = static_cast<char>(len);
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = static_cast<char>(len >> 8);
        h[3] = static_cast<char>(len);
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<char>(len >> (56 - 8 * i));
        n = 10;
    }
    out.append(h, n);
    out.append(payload);
}

/// The value of header `name` (lower case, with its colon) in a request head.
std::string_view header(std::string_view head, std::string_view name) {
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos; at = head.find("\r\n", at + 2)) {
        std::string_view line = head.substr(at + 2, head.find("\r\n", at + 2) - (at + 2));
        if (line.size() <= name.size() || strncasecmp(line.data(), name.data(), name.size()) != 0) continue;
        line.remove_prefix(name.size());
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        return line;
    }
    return {};
}

struct connection {
    bool open = false;
    bool upgraded = false;
    std::string in;   // an unfinished request or frame
    std::string out;  // bytes the socket did not take yet
};

class bare_server {
public:
    bare_server(int port, char const* redis_host, int redis_port) {
        epoll_ = epoll_create1(0);
        if (epoll_ < 0) die("epoll_create1");
        listen_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        if (bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) die("bind");
        if (listen(listen_, SOMAXCONN) < 0) die("listen");
        watch(listen_, EPOLLIN, EPOLL_CTL_ADD);
        std::printf("listening on port %d\n", port);
        std::fflush(stdout);
        if (redis_host) subscribe(redis_host, redis_port);
        buffer_.resize(1 << 18);
        std::string warm;  // what OpenSSL loads on first use, loaded now rather than in the first handshake
        append_accept(warm, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    [[noreturn]] void run() {
        std::vector<epoll_event> events(1024);
        for (;;) {
            int const n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
            if (n < 0 && errno != EINTR) die("epoll_wait");
            for (int i = 0; i < n; ++i) {
                int const fd = events[i].data.fd;
                if (fd == listen_)
                    accept_all();
                else if (fd == redis_)
                    on_redis();
                else if (events[i].events & EPOLLOUT)
                    on_writable(fd);
                else
                    on_readable(fd);
            }
        }
    }

private:
    /// base64(SHA-1(key + GUID)), RFC 6455 §4.2.2. The digest is fetched
    /// once: OpenSSL 3's one-shot SHA1() looks the algorithm up on every call.
    void append_accept(std::string& out, std::string_view key) {
        static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char sha[20];
        unsigned char b64[29];
        EVP_DigestInit_ex2(sha_, sha1_, nullptr);
        EVP_DigestUpdate(sha_, key.data(), key.size());
        EVP_DigestUpdate(sha_, guid.data(), guid.size());
        EVP_DigestFinal_ex(sha_, sha, nullptr);
        EVP_EncodeBlock(b64, sha, sizeof sha);
        out.append(reinterpret_cast<char const*>(b64), 28);
    }

    void watch(int fd, std::uint32_t events, int op) {
        epoll_event e{};
        e.events = events;
        e.data.fd = fd;
        if (epoll_ctl(epoll_, op, fd, &e) < 0) die("epoll_ctl");
    }

    void accept_all() {
        for (;;) {
            int const fd = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK);
            if (fd < 0) return;  // EAGAIN, or out of descriptors: the next wake retries
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as the gateway
            if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1024);
            conns_[fd].open = true;
            max_fd_ = std::max(max_fd_, fd);
            watch(fd, EPOLLIN, EPOLL_CTL_ADD);
        }
    }

    void drop(int fd) {
        close(fd);  // also leaves the epoll set
        conns_[fd] = connection{};
    }

    void on_readable(int fd) {
        connection& c = conns_[fd];
        ssize_t const n = read(fd, buffer_.data(), buffer_.size());
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) drop(fd);
            return;
        }
        // Bytes left from the last read go first; else parse the shared buffer in place.
        std::size_t used;
        if (c.in.empty()) {
            used = consume(fd, buffer_.data(), static_cast<std::size_t>(n));
            if (c.open && used < static_cast<std::size_t>(n)) c.in.assign(buffer_.data() + used, n - used);
        } else {
            c.in.append(buffer_.data(), static_cast<std::size_t>(n));
            used = consume(fd, c.in.data(), c.in.size());
            if (c.open) c.in.erase(0, used);
        }
        if (c.open && c.in.empty()) std::string().swap(c.in);
        if (c.open && !reply_.empty()) send(fd, reply_);
        reply_.clear();
    }

    /// Handles the upgrade and every whole frame in d[0, n); returns the bytes used.
    std::size_t consume(int fd, char* d, std::size_t n) {
        connection& c = conns_[fd];
        std::size_t pos = 0;
        if (!c.upgraded) {
            std::string_view const all(d, n);
            std::size_t const end = all.find("\r\n\r\n");
            if (end == std::string_view::npos) {
                if (n > max_request_bytes) drop(fd);
                return 0;
            }
            std::string_view const key = header(all.substr(0, end + 2), "sec-websocket-key:");
            if (key.empty()) {
                static constexpr std::string_view bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
                (void)::send(fd, bad.data(), bad.size(), MSG_NOSIGNAL);
                drop(fd);
                return n;
            }
            reply_ +=
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: ";
            append_accept(reply_, key);
            reply_ += "\r\n\r\n";
            append_frame(reply_, 0x1, hello);
            c.upgraded = true;
            pos = end + 4;
        }
        while (n - pos >= 2) {
            auto* p = reinterpret_cast<unsigned char*>(d + pos);
            unsigned const opcode = p[0] & 0x0F;
            if (!(p[1] & 0x80) || !(p[0] & 0x80)) {  // unmasked or fragmented: not ours to serve
                drop(fd);
                return n;
            }
            std::uint64_t len = p[1] & 0x7F;
            std::size_t h = 2;
            if (len == 126) {
                if (n - pos < 4) break;
                len = (std::uint64_t(p[2]) << 8) | p[3];
                h = 4;
            } else if (len == 127) {
                if (n - pos < 10) break;
                len = 0;
                for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
                h = 10;
            }
            if (len > max_frame_bytes) {
                drop(fd);
                return n;
            }
            if (n - pos < h + 4 + len) break;
            unsigned char const* mask = p + h;
            char* payload = d + pos + h + 4;
            for (std::size_t i = 0; i < len; ++i) payload[i] ^= static_cast<char>(mask[i & 3]);
            pos += h + 4 + static_cast<std::size_t>(len);
            std::string_view const text(payload, static_cast<std::size_t>(len));
            if (opcode == 0x1) {
                std::size_t const t = text.find(R"("t":"PING")");
                if (t == std::string_view::npos) continue;
                std::size_t const at = reply_.size() + (len < 126 ? 2 : len < 65536 ? 4 : 10) + t + 6;
                append_frame(reply_, 0x1, text);
                reply_[at] = 'O';  // PING → PONG
            } else if (opcode == 0x9) {
                append_frame(reply_, 0xA, text);
            } else if (opcode == 0x8) {
                append_frame(reply_, 0x8, text.substr(0, 2));
                send(fd, reply_);
                reply_.clear();
                if (conns_[fd].open) drop(fd);
                return n;
            }
        }
        return pos;
    }

    /// Writes what the socket takes now; keeps the rest (at most
    /// max_backlog_bytes, else the client is dropped) for EPOLLOUT.
    void send(int fd, std::string_view bytes) {
        connection& c = conns_[fd];
        if (!c.out.empty()) {
            if (c.out.size() + bytes.size() > max_backlog_bytes) return drop(fd);
            c.out.append(bytes);
            return;
        }
        ssize_t const w = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (w == static_cast<ssize_t>(bytes.size())) return;
        if (w < 0 && errno != EAGAIN) return drop(fd);
        c.out.assign(bytes.substr(w < 0 ? 0 : static_cast<std::size_t>(w)));
        watch(fd, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
    }

    void on_writable(int fd) {
        connection& c = conns_[fd];
        ssize_t const w = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN) drop(fd);
            return;
        }
        c.out.erase(0, static_cast<std::size_t>(w));
        if (!c.out.empty()) return;
        std::string().swap(c.out);
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    }

    // ---- Redis: SUBSCRIBE ws, RESP parsed by hiredis's reader ----------------
    void subscribe(char const* host, int port) {
        redis_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("REDIS_URI host (an IPv4 address)");
        if (connect(redis_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) die("connect to Redis");
        static constexpr std::string_view cmd = "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nws\r\n";
        if (write(redis_, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) die("SUBSCRIBE");
        reader_ = redisReaderCreate();
        watch(redis_, EPOLLIN, EPOLL_CTL_ADD);
    }

    void on_redis() {
        ssize_t const n = read(redis_, buffer_.data(), buffer_.size());
        if (n <= 0) die("Redis connection lost");
        redisReaderFeed(reader_, buffer_.data(), static_cast<std::size_t>(n));
        burst_.clear();
        void* r = nullptr;
        while (redisReaderGetReply(reader_, &r) == REDIS_OK && r) {
            auto* reply = static_cast<redisReply*>(r);
            if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
                std::string_view(reply->element[0]->str, reply->element[0]->len) == "message") {
                // {"message":{...},"recipients":[...]}: the object between the two keys.
                std::string_view body(reply->element[2]->str, reply->element[2]->len);
                constexpr std::string_view head = R"({"message":)";
                std::size_t const tail = body.rfind(R"(,"recipients":)");
                if (body.substr(0, head.size()) == head && tail != std::string_view::npos)
                    append_frame(burst_, 0x1, body.substr(head.size(), tail - head.size()));
            }
            freeReplyObject(reply);
        }
        if (burst_.empty()) return;
        for (int fd = 0; fd <= max_fd_; ++fd)
            if (conns_[fd].open && conns_[fd].upgraded) send(fd, burst_);
    }

    int epoll_ = -1, listen_ = -1, redis_ = -1, max_fd_ = 0;
    redisReader* reader_ = nullptr;
    EVP_MD* sha1_ = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    EVP_MD_CTX* sha_ = EVP_MD_CTX_new();
    std::vector<connection> conns_;  // by descriptor
    std::vector<char> buffer_;       // every read goes here first
    std::string reply_;              // frames for the connection being read
    std::string burst_;              // frames of one Redis read, for everyone
};

}  // namespace

int main() {
    signal(SIGPIPE, SIG_IGN);
    char const* port = std::getenv("MESA_PORT");
    char const* uri = std::getenv("REDIS_URI");  // redis://HOST:PORT, HOST an IPv4 address
    char host[64] = {};
    int redis_port = 6379;
    if (uri && std::sscanf(uri, "redis://%63[^:/]:%d", host, &redis_port) < 1) {
        std::fprintf(stderr, "mesa-bare-server: REDIS_URI must be redis://HOST:PORT\n");
        return 1;
    }
    bare_server s(port ? std::atoi(port) : 4000, uri ? host : nullptr, redis_port);
    s.run();
}
