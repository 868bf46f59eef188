// mesa-loadgen: the load generator of bench/run. Many WebSocket connections
// on one thread over standalone Asio, with its own minimal client framing
// (HTTP upgrade, masked client frames, unmasked server frames with 7/16/64-bit
// lengths, fragments, close and ping), so that it stays lean and is not the
// bottleneck. Every received frame is checked: the hello (op 10) first, then
// each BENCH/PONG/SOAK frame's op, type and sequence number (cheap substring
// checks; --strict parses every frame with Boost.JSON as well).
//
//   mesa-loadgen fanout  --port 4500 --clients 1000 --messages 1000 --redis-port 6379
//   mesa-loadgen echo    --port 4500 --clients 100 --rate 5000 --duration 10
//   mesa-loadgen echo-max --port 4500 --clients 100 --rate 5000
//   mesa-loadgen connect --port 4500 --clients 10000
//   mesa-loadgen idle    --port 4500 --clients 10000 --ready-file /tmp/ready
//   mesa-loadgen soak    --port 4500 --clients 10000 --rate 20 --duration 600 --redis-port 6379
//                        --server-pid PID --report-s 10 --require-heartbeats
//
// Prints one JSON line of results on stdout; progress goes to stderr.
// Thread-safety: single-threaded by design.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

double seconds_since(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

struct options {
    std::string mode;
    std::string host = "127.0.0.1";
    std::uint16_t port = 4500;
    std::string path = "/";
    std::size_t clients = 1000;
    std::size_t concurrency = 256;    // connections being opened at once
    std::size_t messages = 100;       // fanout: messages published
    std::size_t payload_bytes = 100;  // fanout: size of "d"
    std::string redis_host = "127.0.0.1";
    std::uint16_t redis_port = 6379;
    std::string channel = "ws";
    double rate = 5000;               // echo: PINGs per second, all clients together
    double duration_s = 10;           // echo: measured seconds
    double warmup_s = 1;              // echo: seconds before measuring
    double step_s = 2;                // echo-max: seconds per rate step
    double max_p99_ms = 50;           // echo-max: a step passes below this p99 ...
    double max_loss = 0.01;           // ... and with at most this share of PINGs unanswered
    double growth = 1.5;              // echo-max: rate factor between steps
    int refine = 3;                   // echo-max: bisection steps after the first failure
    double settle_ms = 300;           // fanout: pause between connected and publishing
    double timeout_s = 120;           // whole run
    double hold_s = 0;                // idle: seconds to hold (0: until SIGTERM/SIGINT)
    double tick_us = 250;             // echo: sending timer period
    std::string ready_file;           // idle: written when every connection has its hello
    bool strict = false;              // parse every frame with Boost.JSON
    int server_pid = 0;               // read this process's CPU time over the measured phase
    double report_s = 10;             // soak: seconds between progress reports
    double drain_s = 30;              // soak: at most this long for the last messages after publishing
    std::string samples_file;         // soak: one JSON line per report
    bool require_heartbeats = false;  // soak: fail unless the server sends heartbeats
    bool duration_set = false;
};

[[noreturn]] void usage(std::string const& why) {
    std::cerr << "mesa-loadgen: " << why
              << "\nusage: mesa-loadgen fanout|echo|echo-max|connect|idle|soak [--host H] [--port P] "
                 "[--path /]\n"
                 "  [--clients N] [--concurrency C] [--messages M] [--payload-bytes B] [--redis-host H]\n"
                 "  [--redis-port P] [--channel ws] [--rate R] [--duration S] [--warmup S] [--step S]\n"
                 "  [--max-p99-ms X] [--max-loss F] [--growth F] [--refine N] [--settle-ms X] [--timeout "
                 "S]\n"
                 "  [--hold S] [--tick-us X] [--ready-file PATH] [--strict] [--server-pid PID]\n"
                 "  [--report-s S] [--drain-s S] [--samples-file PATH] [--require-heartbeats]\n";
    std::exit(2);
}

options parse_args(int argc, char** argv) {
    options o;
    if (argc < 2) usage("no mode");
    o.mode = argv[1];
    if (o.mode != "fanout" && o.mode != "echo" && o.mode != "echo-max" && o.mode != "connect" && o.mode != "idle" &&
        o.mode != "soak")
        usage("unknown mode '" + o.mode + "'");
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        auto num = [&]() -> double {
            std::string v = next();
            char* end = nullptr;
            double d = std::strtod(v.c_str(), &end);
            if (v.empty() || *end) usage(a + ": not a number: " + v);
            return d;
        };
        if (a == "--host")
            o.host = next();
        else if (a == "--port")
            o.port = static_cast<std::uint16_t>(num());
        else if (a == "--path")
            o.path = next();
        else if (a == "--clients")
            o.clients = static_cast<std::size_t>(num());
        else if (a == "--concurrency")
            o.concurrency = std::max<std::size_t>(1, static_cast<std::size_t>(num()));
        else if (a == "--messages")
            o.messages = static_cast<std::size_t>(num());
        else if (a == "--payload-bytes")
            o.payload_bytes = static_cast<std::size_t>(num());
        else if (a == "--redis-host")
            o.redis_host = next();
        else if (a == "--redis-port")
            o.redis_port = static_cast<std::uint16_t>(num());
        else if (a == "--channel")
            o.channel = next();
        else if (a == "--rate")
            o.rate = num();
        else if (a == "--duration")
            o.duration_s = num(), o.duration_set = true;
        else if (a == "--warmup")
            o.warmup_s = num();
        else if (a == "--step")
            o.step_s = num();
        else if (a == "--max-p99-ms")
            o.max_p99_ms = num();
        else if (a == "--max-loss")
            o.max_loss = num();
        else if (a == "--growth")
            o.growth = num();
        else if (a == "--refine")
            o.refine = static_cast<int>(num());
        else if (a == "--settle-ms")
            o.settle_ms = num();
        else if (a == "--timeout")
            o.timeout_s = num();
        else if (a == "--hold")
            o.hold_s = num();
        else if (a == "--tick-us")
            o.tick_us = std::max(50.0, num());
        else if (a == "--ready-file")
            o.ready_file = next();
        else if (a == "--strict")
            o.strict = true;
        else if (a == "--server-pid")
            o.server_pid = static_cast<int>(num());
        else if (a == "--report-s")
            o.report_s = std::max(0.1, num());
        else if (a == "--drain-s")
            o.drain_s = num();
        else if (a == "--samples-file")
            o.samples_file = next();
        else if (a == "--require-heartbeats")
            o.require_heartbeats = true;
        else
            usage("unknown option " + a);
    }
    if (o.mode == "echo-max" && o.growth <= 1.0) usage("--growth must be > 1");
    if (o.mode == "soak" && !o.duration_set) o.duration_s = 600;
    if (o.mode == "soak" && o.rate <= 0) usage("--rate must be > 0");
    return o;
}

// xorshift64*: masking keys need no cryptographic quality for a benchmark.
struct rng {
    std::uint64_t s = 0x9E3779B97F4A7C15ull;
    std::uint32_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return static_cast<std::uint32_t>((s * 0x2545F4914F6CDD1Dull) >> 32);
    }
};

/// Appends one masked client frame (FIN, opcode) carrying `payload` to `out`.
void append_frame(std::string& out, std::uint8_t opcode, std::string_view payload, std::uint32_t key) {
    std::size_t const n = payload.size();
    out.push_back(static_cast<char>(0x80 | opcode));
    if (n < 126) {
        out.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i)
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xFF));
    }
    char k[4] = {static_cast<char>(key >> 24), static_cast<char>(key >> 16), static_cast<char>(key >> 8),
                 static_cast<char>(key)};
    out.append(k, 4);
    std::size_t const at = out.size();
    out.append(payload.data(), n);
    char* p = out.data() + at;
    for (std::size_t i = 0; i < n; ++i) p[i] ^= k[i & 3];
}

/// Parses the unsigned integer after `key` (e.g. "\"seq\":") in `s`.
std::optional<std::uint64_t> number_after(std::string_view s, std::string_view key) {
    auto at = s.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    at += key.size();
    if (at >= s.size() || s[at] < '0' || s[at] > '9') return std::nullopt;
    std::uint64_t v = 0;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') v = v * 10 + static_cast<std::uint64_t>(s[at++] - '0');
    return v;
}

double percentile(std::vector<double>& sorted, double p) {
    if (sorted.empty()) return 0;
    double const idx = p * static_cast<double>(sorted.size() - 1);
    auto const lo = static_cast<std::size_t>(std::floor(idx));
    auto const hi = std::min(sorted.size() - 1, lo + 1);
    double const f = idx - static_cast<double>(lo);
    return sorted[lo] * (1 - f) + sorted[hi] * f;
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// CPU seconds (user + system, all threads) used so far by process `pid`; -1
/// if unknown. The scheduler's count in nanoseconds (the first field of
/// /proc/PID/task/*/schedstat) where the kernel keeps it: utime and stime
/// come in clock ticks (10 ms), too coarse for a fan-out that takes a server
/// 0.1 s. The ticks are the fallback.
double process_cpu_seconds(int pid) {
    if (pid <= 0) return -1;
    std::string const proc = "/proc/" + std::to_string(pid);
    if (DIR* tasks = opendir((proc + "/task").c_str())) {
        double ns = 0;
        bool any = false;
        while (dirent const* e = readdir(tasks)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream f(proc + "/task/" + e->d_name + "/schedstat");
            double run = 0;
            if (f >> run) ns += run, any = true;
        }
        closedir(tasks);
        if (any && ns > 0) return ns / 1e9;
    }
    std::ifstream f(proc + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    // Fields after the command: state is field 3; utime and stime are 14 and 15.
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::strtod(field.c_str(), nullptr);
        if (i == 15) stime = std::strtod(field.c_str(), nullptr);
    }
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string fmt(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

class loadgen;

/// One client connection: socket, partial input, pending output.
struct connection {
    explicit connection(asio::io_context& ioc, std::size_t i) : socket(ioc), index(i) {}
    tcp::socket socket;
    std::size_t index;
    bool upgraded = false;
    bool hello = false;
    bool closed = false;
    bool writing = false;
    bool reading = false;
    std::string partial;         // bytes of an incomplete frame (or HTTP response)
    std::string fragments;       // payload of a fragmented message so far
    std::string out;             // frames waiting for the current write to finish
    std::string inflight;        // frames being written
    std::uint64_t next_seq = 0;  // fanout/soak: next expected sequence number
    std::uint64_t received = 0;
    std::uint32_t heartbeats = 0;  // soak: op 1 frames received
};

class loadgen {
public:
    explicit loadgen(options o) : o_(std::move(o)), timeout_(ioc_), tick_(ioc_), signals_(ioc_, SIGINT, SIGTERM) {
        read_buffer_.resize(1 << 18);
    }

    int run() {
        start_ = clock_type::now();
        cpu_start_ = cpu_seconds();
        mark_server();  // connect: the measured phase starts now
        endpoint_ = tcp::endpoint(asio::ip::make_address(o_.host), o_.port);
        request_ = "GET " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
                   "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                   "dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n";
        timeout_.expires_after(std::chrono::milliseconds(static_cast<long long>(o_.timeout_s * 1000)));
        timeout_.async_wait([this](asio::error_code ec) {
            if (ec) return;
            timed_out_ = true;
            std::cerr << "mesa-loadgen: timeout after " << o_.timeout_s << " s\n";
            finish();
        });
        signals_.async_wait([this](asio::error_code ec, int) {
            if (ec) return;
            if (o_.mode == "idle")
                finish();
            else {
                interrupted_ = true;
                finish();
            }
        });
        conns_.reserve(o_.clients);
        for (std::size_t i = 0; i < o_.clients; ++i) conns_.push_back(std::make_unique<connection>(ioc_, i));
        open_more();
        ioc_.run();
        return (timed_out_ || interrupted_ || errors_ > 0 || soak_failed_) ? 1 : 0;
    }

private:
    // ---- connecting ---------------------------------------------------------
    void open_more() {
        while (next_open_ < conns_.size() && opening_ < o_.concurrency) {
            connection& c = *conns_[next_open_++];
            ++opening_;
            c.socket.async_connect(endpoint_, [this, &c](asio::error_code ec) {
                if (ec) return fail(c, "connect: " + ec.message());
                c.socket.set_option(tcp::no_delay(true));
                c.socket.non_blocking(true);
                c.out = request_;
                flush(c);
                arm_read(c);
            });
        }
    }

    void fail(connection& c, std::string const& why) {
        if (c.closed) return;
        if (!c.hello) {
            --opening_;
            ++connect_failures_;
            if (connect_failures_ <= 5) std::cerr << "mesa-loadgen: connection " << c.index << ": " << why << "\n";
            c.closed = true;
            asio::error_code ignored;
            c.socket.close(ignored);
            after_hello_or_failure();
            return;
        }
        ++closed_after_open_;
        if (closed_after_open_ <= 5) std::cerr << "mesa-loadgen: connection " << c.index << ": " << why << "\n";
        if (o_.mode == "soak") ++drop_reasons_[why.substr(0, 80)];
        c.closed = true;
        asio::error_code ignored;
        c.socket.close(ignored);
        if (o_.mode == "fanout") check_fanout_done();
    }

    void after_hello_or_failure() {
        open_more();
        if (hellos_ + connect_failures_ == conns_.size() && !all_open_) {
            all_open_ = true;
            all_open_at_ = clock_type::now();
            std::cerr << "mesa-loadgen: " << hellos_ << " connection(s) open, " << connect_failures_ << " failed, in "
                      << seconds_since(start_, all_open_at_) << " s\n";
            on_all_open();
        }
    }

    // ---- I/O ----------------------------------------------------------------
    void flush(connection& c) {
        if (c.writing || c.out.empty() || c.closed) return;
        c.writing = true;
        c.inflight.swap(c.out);
        c.out.clear();
        asio::async_write(c.socket, asio::buffer(c.inflight), [this, &c](asio::error_code ec, std::size_t) {
            c.writing = false;
            c.inflight.clear();
            if (ec) return fail(c, "write: " + ec.message());
            flush(c);
        });
    }

    void arm_read(connection& c) {
        if (c.reading || c.closed) return;
        c.reading = true;
        c.socket.async_wait(tcp::socket::wait_read, [this, &c](asio::error_code ec) {
            c.reading = false;
            if (c.closed) return;
            if (ec) return fail(c, "wait: " + ec.message());
            // Drain what is there, a bounded number of reads per wake so that
            // one busy socket does not starve the others.
            for (int i = 0; i < 8 && !c.closed; ++i) {
                asio::error_code rec;
                std::size_t n = c.socket.read_some(asio::buffer(read_buffer_), rec);
                if (rec == asio::error::would_block || rec == asio::error::try_again) break;
                if (rec) return fail(c, rec == asio::error::eof ? "closed by the server" : "read: " + rec.message());
                bytes_in_ += n;
                read_time_ = clock_type::now();  // one clock read per read, not per frame
                consume(c, std::string_view(read_buffer_.data(), n));
                if (n < read_buffer_.size()) break;
            }
            if (!c.closed) arm_read(c);
            flush_dirty();
        });
    }

    void consume(connection& c, std::string_view data) {
        if (!c.partial.empty()) {
            c.partial.append(data.data(), data.size());
            std::string buffer;
            buffer.swap(c.partial);
            std::size_t used = parse(c, buffer);
            if (!c.closed && used < buffer.size()) c.partial.assign(buffer, used, std::string::npos);
        } else {
            std::size_t used = parse(c, data);
            if (!c.closed && used < data.size()) c.partial.assign(data.data() + used, data.size() - used);
        }
    }

    /// Parses as much of `d` as is complete; returns the bytes used.
    std::size_t parse(connection& c, std::string_view d) {
        std::size_t pos = 0;
        if (!c.upgraded) {
            auto end = d.find("\r\n\r\n");
            if (end == std::string_view::npos) {
                if (d.size() > 16384) fail(c, "HTTP response too long");
                return 0;
            }
            if (d.substr(0, 12) != "HTTP/1.1 101") {
                auto line = d.substr(0, d.find("\r\n"));
                fail(c, "upgrade refused: " + std::string(line));
                return d.size();
            }
            c.upgraded = true;
            pos = end + 4;
        }
        while (!c.closed) {
            std::size_t const avail = d.size() - pos;
            if (avail < 2) break;
            auto const* p = reinterpret_cast<unsigned char const*>(d.data() + pos);
            bool const fin = p[0] & 0x80;
            unsigned const opcode = p[0] & 0x0F;
            if (p[0] & 0x70) {
                ++invalid_;
                fail(c, "frame with RSV bits");
                return d.size();
            }
            if (p[1] & 0x80) {
                ++invalid_;
                fail(c, "masked server frame");
                return d.size();
            }
            std::uint64_t len = p[1] & 0x7F;
            std::size_t header = 2;
            if (len == 126) {
                if (avail < 4) break;
                len = (std::uint64_t(p[2]) << 8) | p[3];
                header = 4;
            } else if (len == 127) {
                if (avail < 10) break;
                len = 0;
                for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
                header = 10;
            }
            if (len > (64u << 20)) {
                ++invalid_;
                fail(c, "frame over 64 MiB");
                return d.size();
            }
            if (avail < header + len) break;
            std::string_view payload(d.data() + pos + header, static_cast<std::size_t>(len));
            pos += header + static_cast<std::size_t>(len);
            ++frames_in_;
            if (opcode == 0x8) {
                std::uint16_t code =
                    payload.size() >= 2
                        ? static_cast<std::uint16_t>((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1]))
                        : 1005;
                ++close_frames_;
                fail(c, "close frame " + std::to_string(code) + " " +
                            std::string(payload.substr(std::min<std::size_t>(2, payload.size()))));
                return d.size();
            }
            if (opcode == 0x9) {
                append_frame(c.out, 0xA, payload, rng_.next());
                mark_dirty(c);
                continue;
            }
            if (opcode == 0xA) continue;
            if (opcode == 0x0 || !fin) {  // fragmented message
                if (opcode != 0x0) c.fragments.clear();
                c.fragments.append(payload.data(), payload.size());
                if (!fin) continue;
                std::string whole;
                whole.swap(c.fragments);
                on_text(c, whole);
                continue;
            }
            if (opcode != 0x1) {
                ++invalid_;
                continue;
            }
            on_text(c, payload);
        }
        return pos;
    }

    void mark_dirty(connection& c) {
        if (!c.writing && !c.out.empty()) dirty_.push_back(&c);
    }
    void flush_dirty() {
        for (auto* c : dirty_) flush(*c);
        dirty_.clear();
    }

    // ---- messages -----------------------------------------------------------
    bool strict_ok(std::string_view text, int op, char const* type) {
        boost::system::error_code ec;
        auto v = boost::json::parse(text, ec);
        if (ec || !v.is_object()) return false;
        auto const& o = v.get_object();
        auto const* jop = o.if_contains("op");
        if (!jop || !jop->is_int64() || jop->get_int64() != op) return false;
        if (type) {
            auto const* t = o.if_contains("t");
            if (!t || !t->is_string() || t->get_string() != type) return false;
        }
        return true;
    }

    void on_text(connection& c, std::string_view text) {
        if (!c.hello) {
            if (text.find("\"op\":10") == std::string_view::npos || (o_.strict && !strict_ok(text, 10, nullptr))) {
                ++invalid_;
                return fail(c, "first frame is not a hello: " + std::string(text.substr(0, 80)));
            }
            if (o_.mode == "soak") {
                auto hb = number_after(text, "\"c_heartbeat_interval\":");
                heartbeat_interval_ms_ = hb ? *hb : 0;
            }
            c.hello = true;
            --opening_;
            ++hellos_;
            last_hello_at_ = clock_type::now();
            after_hello_or_failure();
            return;
        }
        if (o_.mode == "fanout") return on_fanout_frame(c, text);
        if (o_.mode == "echo" || o_.mode == "echo-max") return on_pong(c, text);
        if (o_.mode == "soak") return on_soak_frame(c, text);
        ++unexpected_;  // connect/idle: nothing else is expected
    }

    void on_all_open() {
        if (o_.mode == "connect") return finish();
        if (o_.mode == "idle") {
            if (!o_.ready_file.empty()) std::ofstream(o_.ready_file) << hellos_ << "\n";
            std::cerr << "READY " << hellos_ << std::endl;
            if (o_.hold_s > 0) {
                tick_.expires_after(std::chrono::milliseconds(static_cast<long long>(o_.hold_s * 1000)));
                tick_.async_wait([this](asio::error_code ec) {
                    if (!ec) finish();
                });
            }
            timeout_.cancel();  // idle holds until told
            return;
        }
        if (o_.mode == "fanout") {
            tick_.expires_after(std::chrono::microseconds(static_cast<long long>(o_.settle_ms * 1000)));
            tick_.async_wait([this](asio::error_code ec) {
                if (!ec) publish();
            });
            return;
        }
        if (o_.mode == "soak") return soak_begin();
        echo_begin();
    }

    // ---- fanout -------------------------------------------------------------
    /// Connects the socket fanout and soak PUBLISH on (RESP written by hand);
    /// false, with an error counted, when Redis is not there.
    bool connect_redis() {
        redis_ = std::make_unique<tcp::socket>(ioc_);
        asio::error_code ec;
        redis_->connect(tcp::endpoint(asio::ip::make_address(o_.redis_host), o_.redis_port), ec);
        if (ec) {
            std::cerr << "mesa-loadgen: cannot connect to Redis: " << ec.message() << "\n";
            ++errors_;
            return false;
        }
        redis_->set_option(tcp::no_delay(true));
        return true;
    }

    void publish() {
        if (hellos_ == 0 || !connect_redis()) return finish();
        std::string pad(o_.payload_bytes > 24 ? o_.payload_bytes - 24 : 1, 'x');
        expected_suffix_ = ",\"pad\":\"" + pad + "\"},\"t\":\"BENCH\"}";
        for (std::size_t i = 0; i < o_.messages; ++i) {
            std::string body = "{\"message\":{\"op\":0,\"d\":{\"seq\":" + std::to_string(i) + ",\"pad\":\"" + pad +
                               "\"},\"t\":\"BENCH\"},\"recipients\":[\"*\"]}";
            publish_buffer_ += "*3\r\n$7\r\nPUBLISH\r\n$" + std::to_string(o_.channel.size()) + "\r\n" + o_.channel +
                               "\r\n$" + std::to_string(body.size()) + "\r\n" + body + "\r\n";
            if (i == 0) message_bytes_ = body.size();
        }
        expected_ = static_cast<std::uint64_t>(hellos_) * o_.messages;
        mark_server();
        published_at_ = clock_type::now();
        asio::async_write(*redis_, asio::buffer(publish_buffer_), [this](asio::error_code ec, std::size_t) {
            if (ec) {
                std::cerr << "mesa-loadgen: Redis write: " << ec.message() << "\n";
                ++errors_;
                return finish();
            }
            read_redis();
        });
    }

    void read_redis() {
        redis_->async_read_some(asio::buffer(redis_in_), [this](asio::error_code ec, std::size_t n) {
            if (ec) return;
            for (std::size_t i = 0; i < n; ++i) {
                char ch = redis_in_[i];
                if (redis_line_start_) {
                    redis_line_start_ = false;
                    if (ch == ':')
                        ++publish_replies_;
                    else if (ch == '-')
                        ++errors_;
                    redis_reading_count_ = (ch == ':' && publish_replies_ == 1);
                } else if (redis_reading_count_ && ch >= '0' && ch <= '9') {
                    receivers_ = receivers_ * 10 + (ch - '0');
                }
                if (ch == '\n') {
                    redis_line_start_ = true;
                    redis_reading_count_ = false;
                }
            }
            if (publish_replies_ < o_.messages) read_redis();
        });
    }

    /// The sequence number of a BENCH frame: first as the exact bytes a
    /// server sends when it keeps the key order of the publication (both do),
    /// else by looking for each part.
    std::optional<std::uint64_t> bench_seq(std::string_view text) {
        static constexpr std::string_view prefix = "{\"op\":0,\"d\":{\"seq\":";
        if (text.size() > prefix.size() + expected_suffix_.size() && text.compare(0, prefix.size(), prefix) == 0 &&
            text.compare(text.size() - expected_suffix_.size(), expected_suffix_.size(), expected_suffix_) == 0) {
            std::size_t i = prefix.size(), end = text.size() - expected_suffix_.size();
            std::uint64_t v = 0;
            if (i == end) return std::nullopt;
            for (; i < end; ++i) {
                char ch = text[i];
                if (ch < '0' || ch > '9') return std::nullopt;
                v = v * 10 + static_cast<std::uint64_t>(ch - '0');
            }
            ++exact_frames_;
            return v;
        }
        auto seq = number_after(text, "\"seq\":");
        if (seq && text.find("\"t\":\"BENCH\"") != std::string_view::npos &&
            text.find("\"op\":0") != std::string_view::npos)
            return seq;
        return std::nullopt;
    }

    void on_fanout_frame(connection& c, std::string_view text) {
        auto seq = bench_seq(text);
        bool ok = seq.has_value();
        if (ok && o_.strict) ok = strict_ok(text, 0, "BENCH");
        if (!ok) {
            ++invalid_;
            return;
        }
        auto const now = read_time_;
        if (deliveries_ == 0) first_delivery_at_ = now;
        ++deliveries_;
        if (++c.received == o_.messages) ++complete_;
        if (*seq != c.next_seq) {
            if (*seq < c.next_seq)
                ++reordered_;  // duplicate or late
            else
                gaps_ += *seq - c.next_seq;
        }
        c.next_seq = std::max(c.next_seq, *seq + 1);
        last_delivery_at_ = now;
        check_fanout_done();
    }

    void check_fanout_done() {
        if (expected_ == 0) return;
        if (deliveries_ >= expected_) return finish();
        // Closed connections receive nothing more: done when every open one
        // has everything (checked on a close only, which is rare).
        if (closed_after_open_ == 0 || complete_ + closed_after_open_ < hellos_) return;
        for (auto const& c : conns_)
            if (c->hello && !c->closed && c->received < o_.messages) return;
        finish();
    }

    // ---- soak ---------------------------------------------------------------
    // Every connection answers each op 1 with op 11 and must receive every
    // message published at --rate on the Redis channel, in order; a report
    // every --report-s seconds, one summary at the end.
    struct sample {
        double t_s;         // since publishing started
        long long rss_kib;  // server VmRSS (-1: unknown)
        std::size_t open;   // connections still open
        std::size_t drops;  // connections closed after their hello
        std::uint64_t published, deliveries, behind, gaps, reordered, heartbeats, retries;
        double lat_p50_ms, lat_p99_ms, lat_max_ms, server_cpu_share, loadgen_cpu_share, load1;
    };

    static long long rss_kib(int pid) {
        if (pid <= 0) return -1;
        std::ifstream f("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        while (std::getline(f, line))
            if (line.compare(0, 6, "VmRSS:") == 0) return std::atoll(line.c_str() + 6);
        return -1;
    }
    static double load1() {
        std::ifstream f("/proc/loadavg");
        double l = -1;
        f >> l;
        return l;
    }

    void soak_begin() {
        if (hellos_ == 0) return finish();
        timeout_.cancel();  // the soak has its own end
        if (o_.require_heartbeats && heartbeat_interval_ms_ == 0) {
            std::cerr << "mesa-loadgen: the hello advertises no c_heartbeat_interval "
                         "(start the server with heartbeats on)\n";
            ++errors_;
            return finish();
        }
        if (!connect_redis()) return finish();
        soak_pad_.assign(o_.payload_bytes > 40 ? o_.payload_bytes - 40 : 1, 'x');
        expected_suffix_ = ",\"pad\":\"" + soak_pad_ + "\"},\"t\":\"SOAK\"}";
        if (!o_.samples_file.empty()) samples_out_.open(o_.samples_file, std::ios::trunc);
        publish_start_ = clock_type::now();
        publish_end_ = publish_start_ + std::chrono::microseconds(static_cast<long long>(o_.duration_s * 1e6));
        next_report_ = publish_start_;
        last_report_at_ = publish_start_;
        last_report_cpu_ = cpu_seconds();
        last_report_server_cpu_ = process_cpu_seconds(o_.server_pid);
        mark_server();
        std::cerr << "mesa-loadgen: soak: " << hellos_ << " connections, " << o_.rate << " messages/s to all ("
                  << fmt(o_.rate * static_cast<double>(hellos_)) << " deliveries/s), " << o_.duration_s
                  << " s, heartbeat interval " << heartbeat_interval_ms_ << " ms\n";
        std::fprintf(stderr, "%7s %9s %6s %5s %9s %11s %7s %5s %5s %8s %5s %7s %7s %7s %6s %6s %5s\n", "t_s", "rss_MiB",
                     "open", "drops", "published", "delivered", "behind", "lost", "reord", "hb", "hb_rt", "p50_ms",
                     "p99_ms", "max_ms", "srv%", "lg%", "load");
        read_redis_replies();
        soak_report();  // t = 0: the baseline after every connection opened
        soak_tick();
    }

    void soak_tick() {
        auto const now = clock_type::now();
        if (!soak_draining_) {
            auto const until = std::min(now, publish_end_);
            auto const due = static_cast<std::uint64_t>(o_.rate * seconds_since(publish_start_, until));
            auto const ts = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start_).count();
            while (published_ < due) {
                std::string body = "{\"message\":{\"op\":0,\"d\":{\"seq\":" + std::to_string(published_) +
                                   ",\"ts\":" + std::to_string(ts) + ",\"pad\":\"" + soak_pad_ +
                                   "\"},\"t\":\"SOAK\"},\"recipients\":[\"*\"]}";
                redis_out_ += "*3\r\n$7\r\nPUBLISH\r\n$" + std::to_string(o_.channel.size()) + "\r\n" + o_.channel +
                              "\r\n$" + std::to_string(body.size()) + "\r\n" + body + "\r\n";
                if (published_ == 0) message_bytes_ = body.size();
                ++published_;
            }
            write_redis();
            if (now >= publish_end_) {
                soak_draining_ = true;
                drain_until_ = now + std::chrono::microseconds(static_cast<long long>(o_.drain_s * 1e6));
            }
        }
        if (now >= next_report_) soak_report();
        if (soak_draining_ && (soak_behind() == 0 || now >= drain_until_)) {
            soak_report();
            return finish();
        }
        tick_.expires_after(std::chrono::milliseconds(10));
        tick_.async_wait([this](asio::error_code ec) {
            if (!ec) soak_tick();
        });
    }

    void write_redis() {
        if (redis_writing_ || redis_out_.empty()) return;
        redis_writing_ = true;
        redis_inflight_.swap(redis_out_);
        redis_out_.clear();
        asio::async_write(*redis_, asio::buffer(redis_inflight_), [this](asio::error_code ec, std::size_t) {
            redis_writing_ = false;
            redis_inflight_.clear();
            if (ec) {
                if (finished_) return;
                std::cerr << "mesa-loadgen: Redis write: " << ec.message() << "\n";
                ++errors_;
                return finish();
            }
            write_redis();
        });
    }

    /// Counts the integer replies to PUBLISH: each says how many servers
    /// received the message (0: the gateway was not subscribed).
    void read_redis_replies() {
        redis_->async_read_some(asio::buffer(redis_in_), [this](asio::error_code ec, std::size_t n) {
            if (ec) {
                if (!finished_) {
                    std::cerr << "mesa-loadgen: Redis read: " << ec.message() << "\n";
                    ++errors_;
                    finish();
                }
                return;
            }
            for (std::size_t i = 0; i < n; ++i) {
                char ch = redis_in_[i];
                if (redis_line_start_) {
                    redis_line_start_ = false;
                    redis_reading_count_ = ch == ':';
                    redis_count_ = 0;
                    if (ch == '-') ++redis_errors_;
                } else if (redis_reading_count_ && ch >= '0' && ch <= '9') {
                    redis_count_ = redis_count_ * 10 + static_cast<std::uint64_t>(ch - '0');
                }
                if (ch == '\n') {
                    if (redis_reading_count_) {
                        ++publish_replies_;
                        if (redis_count_ == 0) ++unreceived_publishes_;
                    }
                    redis_line_start_ = true;
                    redis_reading_count_ = false;
                }
            }
            read_redis_replies();
        });
    }

    /// Messages published but not (yet) received, over the open connections.
    std::uint64_t soak_behind() const {
        std::uint64_t behind = 0;
        for (auto const& c : conns_)
            if (c->hello && !c->closed && c->next_seq < published_) behind += published_ - c->next_seq;
        return behind;
    }

    void on_soak_frame(connection& c, std::string_view text) {
        if (text == "{\"op\":1,\"d\":{}}" || is_heartbeat_retry(text)) {
            ++c.heartbeats;
            ++heartbeats_;
            if (text.size() > 15) ++heartbeat_retries_;
            append_frame(c.out, 0x1, "{\"op\":11,\"d\":{}}", rng_.next());
            mark_dirty(c);
            return;
        }
        std::uint64_t seq = 0, ts = 0;
        if (!soak_fields(text, seq, ts)) {
            ++invalid_;
            if (invalid_ <= 5) std::cerr << "mesa-loadgen: unexpected frame: " << text.substr(0, 120) << "\n";
            return;
        }
        ++deliveries_;
        ++c.received;
        if (seq != c.next_seq) {
            if (seq < c.next_seq)
                ++reordered_;  // duplicate or late
            else
                gaps_ += seq - c.next_seq;
        }
        c.next_seq = std::max(c.next_seq, seq + 1);
        auto const now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(read_time_ - start_).count();
        auto const ms = static_cast<float>(static_cast<double>(now_ns - static_cast<long long>(ts)) / 1e6);
        interval_latency_.push_back(ms);
        max_latency_ms_ = std::max(max_latency_ms_, static_cast<double>(ms));
    }

    /// op 1 {"tries": n, "max": m}: the server saw no op 11 since its last beat.
    bool is_heartbeat_retry(std::string_view text) {
        static constexpr std::string_view prefix = "{\"op\":1,\"d\":{\"tries\":";
        if (text.compare(0, prefix.size(), prefix) != 0) return false;
        return strict_ok(text, 1, nullptr);
    }

    /// seq and ts of a SOAK frame: the exact bytes first (the server keeps the
    /// key order of the publication), else parsed and checked field by field.
    bool soak_fields(std::string_view text, std::uint64_t& seq, std::uint64_t& ts) {
        static constexpr std::string_view prefix = "{\"op\":0,\"d\":{\"seq\":";
        static constexpr std::string_view middle = ",\"ts\":";
        auto digits = [](std::string_view s, std::size_t& i, std::uint64_t& v) {
            std::size_t const from = i;
            v = 0;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + static_cast<std::uint64_t>(s[i++] - '0');
            return i > from;
        };
        if (!o_.strict && text.size() > prefix.size() + expected_suffix_.size() &&
            text.compare(0, prefix.size(), prefix) == 0 &&
            text.compare(text.size() - expected_suffix_.size(), expected_suffix_.size(), expected_suffix_) == 0) {
            std::string_view body = text.substr(0, text.size() - expected_suffix_.size());
            std::size_t i = prefix.size();
            if (digits(body, i, seq) && body.compare(i, middle.size(), middle) == 0) {
                i += middle.size();
                if (digits(body, i, ts) && i == body.size()) {
                    ++exact_frames_;
                    return true;
                }
            }
        }
        boost::system::error_code ec;
        auto v = boost::json::parse(text, ec);
        if (ec || !v.is_object()) return false;
        auto const& o = v.get_object();
        auto const* op = o.if_contains("op");
        auto const* t = o.if_contains("t");
        auto const* d = o.if_contains("d");
        if (!op || !op->is_int64() || op->get_int64() != 0 || !t || !t->is_string() || t->get_string() != "SOAK" ||
            !d || !d->is_object() || o.size() != 3)
            return false;
        auto const& dd = d->get_object();
        auto const* s = dd.if_contains("seq");
        auto const* st = dd.if_contains("ts");
        auto const* pad = dd.if_contains("pad");
        if (!s || !s->is_int64() || s->get_int64() < 0 || !st || !st->is_int64() || st->get_int64() < 0 || !pad ||
            !pad->is_string() || pad->get_string() != soak_pad_ || dd.size() != 3)
            return false;
        seq = static_cast<std::uint64_t>(s->get_int64());
        ts = static_cast<std::uint64_t>(st->get_int64());
        return true;
    }

    void soak_report() {
        auto const now = clock_type::now();
        sample s{};
        s.t_s = seconds_since(publish_start_, now);
        s.rss_kib = rss_kib(o_.server_pid);
        if (o_.server_pid > 0 && s.rss_kib < 0 && !server_gone_) {
            server_gone_ = true;
            ++errors_;
            std::cerr << "mesa-loadgen: the server process " << o_.server_pid << " is gone\n";
        }
        for (auto const& c : conns_)
            if (c->hello && !c->closed) ++s.open;
        s.drops = closed_after_open_;
        s.published = published_;
        s.deliveries = deliveries_;
        s.behind = soak_behind();
        s.gaps = gaps_;
        s.reordered = reordered_;
        s.heartbeats = heartbeats_;
        s.retries = heartbeat_retries_;
        if (!interval_latency_.empty()) {
            auto k = static_cast<std::size_t>(0.99 * static_cast<double>(interval_latency_.size() - 1));
            std::nth_element(interval_latency_.begin(), interval_latency_.begin() + static_cast<long>(k),
                             interval_latency_.end());
            s.lat_p99_ms = interval_latency_[k];
            auto const m = interval_latency_.size() / 2;
            std::nth_element(interval_latency_.begin(), interval_latency_.begin() + static_cast<long>(m),
                             interval_latency_.begin() + static_cast<long>(k));
            s.lat_p50_ms = interval_latency_[m];
            s.lat_max_ms = *std::max_element(interval_latency_.begin(), interval_latency_.end());
            interval_p99s_.push_back(s.lat_p99_ms);
        }
        interval_latency_.clear();
        double const wall = std::max(1e-9, seconds_since(last_report_at_, now));
        double const cpu = cpu_seconds(), server_cpu = process_cpu_seconds(o_.server_pid);
        s.loadgen_cpu_share = samples_.empty() ? 0 : (cpu - last_report_cpu_) / wall;
        s.server_cpu_share = samples_.empty() || server_cpu < 0 ? 0 : (server_cpu - last_report_server_cpu_) / wall;
        s.load1 = load1();
        last_report_at_ = now;
        last_report_cpu_ = cpu;
        last_report_server_cpu_ = server_cpu;
        while (next_report_ <= now)
            next_report_ += std::chrono::microseconds(static_cast<long long>(o_.report_s * 1e6));
        samples_.push_back(s);
        std::fprintf(
            stderr,
            "%7.1f %9.1f %6zu %5zu %9llu %11llu %7llu %5llu %5llu %8llu %5llu %7.1f %7.1f %7.1f %6.1f %6.1f %5.2f\n",
            s.t_s, static_cast<double>(s.rss_kib) / 1024, s.open, s.drops, static_cast<unsigned long long>(s.published),
            static_cast<unsigned long long>(s.deliveries), static_cast<unsigned long long>(s.behind),
            static_cast<unsigned long long>(s.gaps), static_cast<unsigned long long>(s.reordered),
            static_cast<unsigned long long>(s.heartbeats), static_cast<unsigned long long>(s.retries), s.lat_p50_ms,
            s.lat_p99_ms, s.lat_max_ms, 100 * s.server_cpu_share, 100 * s.loadgen_cpu_share, s.load1);
        if (samples_out_) {
            samples_out_ << sample_json(s) << "\n";
            samples_out_.flush();
        }
    }

    static std::string sample_json(sample const& s) {
        std::ostringstream j;
        j << "{\"t_s\":" << fmt(s.t_s) << ",\"rss_kib\":" << s.rss_kib << ",\"open\":" << s.open
          << ",\"drops\":" << s.drops << ",\"published\":" << s.published << ",\"deliveries\":" << s.deliveries
          << ",\"behind\":" << s.behind << ",\"lost\":" << s.gaps << ",\"reordered\":" << s.reordered
          << ",\"heartbeats\":" << s.heartbeats << ",\"heartbeat_retries\":" << s.retries
          << ",\"latency_p50_ms\":" << fmt(s.lat_p50_ms) << ",\"latency_p99_ms\":" << fmt(s.lat_p99_ms)
          << ",\"latency_max_ms\":" << fmt(s.lat_max_ms) << ",\"server_cpu_share\":" << fmt(s.server_cpu_share)
          << ",\"loadgen_cpu_share\":" << fmt(s.loadgen_cpu_share) << ",\"load1\":" << fmt(s.load1) << "}";
        return j.str();
    }

    /// Least-squares slope of RSS over time, KiB per minute, of samples[from..].
    double rss_slope(std::size_t from) const {
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (std::size_t i = from; i < samples_.size(); ++i) {
            auto const& s = samples_[i];
            if (s.rss_kib < 0) continue;
            double const x = s.t_s / 60, y = static_cast<double>(s.rss_kib);
            n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
        }
        double const den = n * sxx - sx * sx;
        return n < 2 || den == 0 ? 0 : (n * sxy - sx * sy) / den;
    }

    /// Appends the soak results to `j` and prints the summary; true when nothing was dropped or lost.
    bool soak_summary(std::ostringstream& j) {
        std::uint64_t lost = gaps_, expected = 0, min_beats = UINT64_MAX;
        std::size_t open = 0;
        for (auto const& c : conns_) {
            if (!c->hello || c->closed) continue;
            ++open;
            if (c->next_seq < published_) lost += published_ - c->next_seq;
            expected += published_;
            min_beats = std::min<std::uint64_t>(min_beats, c->heartbeats);
        }
        if (open == 0) min_beats = 0;
        long long first = -1, last = -1, lo = -1, hi = -1;
        for (auto const& s : samples_) {
            if (s.rss_kib < 0) continue;
            if (first < 0) first = s.rss_kib;
            last = s.rss_kib;
            lo = lo < 0 ? s.rss_kib : std::min(lo, s.rss_kib);
            hi = std::max(hi, s.rss_kib);
        }
        double const slope = rss_slope(0), slope_half = rss_slope(samples_.size() / 2);
        double const soak_s = samples_.empty() ? 0 : samples_.back().t_s;
        // Heartbeats: every open connection should have had about one per
        // interval; fewer than half of that means the server stopped beating.
        double const beats_expected =
            heartbeat_interval_ms_ > 0 ? soak_s * 1000 / static_cast<double>(heartbeat_interval_ms_) : 0;
        bool const beats_ok = !o_.require_heartbeats ||
                              (heartbeat_interval_ms_ > 0 && static_cast<double>(min_beats) >= beats_expected / 2 - 1);
        std::vector<double> p99s = interval_p99s_;
        std::sort(p99s.begin(), p99s.end());
        bool const ok = connect_failures_ == 0 && closed_after_open_ == 0 && lost == 0 && reordered_ == 0 &&
                        invalid_ == 0 && unexpected_ == 0 && unreceived_publishes_ == 0 && redis_errors_ == 0 &&
                        errors_ == 0 && publish_replies_ == published_ && beats_ok && !interrupted_;
        j << ",\"duration_s\":" << fmt(o_.duration_s) << ",\"rate\":" << fmt(o_.rate)
          << ",\"message_bytes\":" << message_bytes_ << ",\"published\":" << published_
          << ",\"publish_replies\":" << publish_replies_ << ",\"unreceived_publishes\":" << unreceived_publishes_
          << ",\"deliveries\":" << deliveries_ << ",\"expected_open\":" << expected << ",\"lost\":" << lost
          << ",\"gaps\":" << gaps_ << ",\"reordered\":" << reordered_ << ",\"exact_frames\":" << exact_frames_
          << ",\"open_at_end\":" << open << ",\"dropped\":" << closed_after_open_
          << ",\"heartbeat_interval_ms\":" << heartbeat_interval_ms_ << ",\"heartbeats\":" << heartbeats_
          << ",\"heartbeat_retries\":" << heartbeat_retries_ << ",\"min_heartbeats_per_connection\":" << min_beats
          << ",\"rss_kib_first\":" << first << ",\"rss_kib_min\":" << lo << ",\"rss_kib_max\":" << hi
          << ",\"rss_kib_last\":" << last << ",\"rss_slope_kib_per_min\":" << fmt(slope)
          << ",\"rss_slope_second_half_kib_per_min\":" << fmt(slope_half)
          << ",\"latency_max_ms\":" << fmt(max_latency_ms_)
          << ",\"latency_p99_ms_worst_interval\":" << fmt(p99s.empty() ? 0 : p99s.back())
          << ",\"latency_p99_ms_median_interval\":" << fmt(p99s.empty() ? 0 : p99s[p99s.size() / 2])
          << ",\"drop_reasons\":{";
        bool comma = false;
        for (auto const& [why, n] : drop_reasons_) {
            j << (comma ? "," : "") << boost::json::serialize(boost::json::value(why)) << ":" << n;
            comma = true;
        }
        j << "},\"pass\":" << (ok ? "true" : "false");

        auto mib = [](long long k) { return k < 0 ? std::string("?") : fmt(static_cast<double>(k) / 1024); };
        std::cerr << "\nsoak summary: " << fmt(soak_s) << " s, " << hellos_ << " connections, " << fmt(o_.rate)
                  << " messages/s of " << message_bytes_ << " bytes to all ("
                  << fmt(o_.rate * static_cast<double>(hellos_)) << " deliveries/s), heartbeat interval "
                  << heartbeat_interval_ms_ << " ms\n"
                  << "  gateway RSS MiB: first " << mib(first) << ", min " << mib(lo) << ", max " << mib(hi)
                  << ", last " << mib(last) << "; slope " << fmt(slope) << " KiB/min over the run, " << fmt(slope_half)
                  << " KiB/min over its second half\n"
                  << "  connections: " << hellos_ << " opened, " << connect_failures_ << " failed to open, "
                  << closed_after_open_ << " dropped, " << open << " open at the end\n";
        for (auto const& [why, n] : drop_reasons_) std::cerr << "    dropped " << n << ": " << why << "\n";
        std::cerr << "  messages: " << published_ << " published (" << publish_replies_ << " acknowledged by Redis, "
                  << unreceived_publishes_ << " with no subscriber), " << deliveries_ << " delivered, " << lost
                  << " lost, " << reordered_ << " reordered, " << invalid_ << " invalid frames\n"
                  << "  heartbeats: " << heartbeats_ << " answered (" << heartbeat_retries_
                  << " were retries), at least " << min_beats << " per open connection (about " << fmt(beats_expected)
                  << " expected)\n"
                  << "  publish -> delivery latency: p99 per interval median "
                  << fmt(p99s.empty() ? 0 : p99s[p99s.size() / 2]) << " ms, worst "
                  << fmt(p99s.empty() ? 0 : p99s.back()) << " ms; max " << fmt(max_latency_ms_) << " ms\n"
                  << "  result: " << (ok ? "PASS" : "FAIL") << "\n";
        return ok;
    }

    // ---- echo ---------------------------------------------------------------
    void echo_begin() {
        open_list_.clear();
        for (auto& c : conns_)
            if (c->hello && !c->closed) open_list_.push_back(c.get());
        if (open_list_.empty()) return finish();
        step_rate_ = o_.rate;
        if (o_.mode == "echo") {  // measured from the end of the warm-up
            server_mark_timer_ = std::make_unique<asio::steady_timer>(ioc_);
            server_mark_timer_->expires_after(std::chrono::microseconds(static_cast<long long>(o_.warmup_s * 1e6)));
            server_mark_timer_->async_wait([this](asio::error_code ec) {
                if (!ec) mark_server();
            });
        } else {
            mark_server();
        }
        start_step();
    }

    void start_step() {
        step_start_ = clock_type::now();
        step_sent_ = 0;
        step_sending_ = true;
        step_rtts_.clear();
        step_received_ = 0;
        ++step_;
        double const length = o_.mode == "echo" ? o_.warmup_s + o_.duration_s : o_.step_s;
        step_end_ = step_start_ + std::chrono::microseconds(static_cast<long long>(length * 1e6));
        measure_from_ = o_.mode == "echo"
                            ? step_start_ + std::chrono::microseconds(static_cast<long long>(o_.warmup_s * 1e6))
                            : step_start_;
        schedule_tick();
    }

    void schedule_tick() {
        tick_.expires_after(std::chrono::microseconds(static_cast<long long>(o_.tick_us)));
        tick_.async_wait([this](asio::error_code ec) {
            if (ec) return;
            on_tick();
        });
    }

    void on_tick() {
        auto const now = clock_type::now();
        if (step_sending_) {
            auto const until = std::min(now, step_end_);
            auto const due = static_cast<std::uint64_t>(step_rate_ * seconds_since(step_start_, until));
            std::string body;
            while (step_sent_ < due) {
                connection& c = *open_list_[rr_++ % open_list_.size()];
                if (c.closed) {
                    ++step_sent_;
                    continue;
                }
                auto const ts = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start_).count();
                bool const measured = now >= measure_from_;
                body = "{\"op\":0,\"d\":{\"seq\":" + std::to_string(seq_++) + ",\"ts\":" + std::to_string(ts) +
                       ",\"st\":" + std::to_string(measured ? step_ : 0) + "},\"t\":\"PING\"}";
                append_frame(c.out, 0x1, body, rng_.next());
                mark_dirty(c);
                ++step_sent_;
                ++pings_sent_;
                if (measured) ++step_measured_sent_;
            }
            flush_dirty();
            if (now >= step_end_) {
                step_sending_ = false;
                drain_until_ = now + std::chrono::milliseconds(o_.mode == "echo" ? 2000 : 1000);
            }
        }
        if (!step_sending_) {
            // Wait for the replies of this step, bounded.
            if (step_received_ >= step_measured_sent_ || now >= drain_until_) return end_step();
        }
        schedule_tick();
    }

    void on_pong(connection&, std::string_view text) {
        auto ts = number_after(text, "\"ts\":");
        auto st = number_after(text, "\"st\":");
        bool ok = ts && st && number_after(text, "\"seq\":") && text.find("\"t\":\"PONG\"") != std::string_view::npos;
        if (ok && o_.strict) ok = strict_ok(text, 0, "PONG");
        if (!ok) {
            ++invalid_;
            return;
        }
        ++pongs_;
        if (*st != 0 && *st == step_) {
            auto const now_ns =
                std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start_).count();
            step_rtts_.push_back(static_cast<double>(now_ns - static_cast<long long>(*ts)) / 1e6);
            ++step_received_;
        }
    }

    struct step_result {
        double rate;
        double sent;
        double received;
        double p50, p90, p99, p999, max, mean;
        bool pass;
    };

    step_result summarize() {
        std::sort(step_rtts_.begin(), step_rtts_.end());
        step_result r{};
        r.rate = step_rate_;
        r.sent = static_cast<double>(step_measured_sent_);
        r.received = static_cast<double>(step_received_);
        r.p50 = percentile(step_rtts_, 0.5);
        r.p90 = percentile(step_rtts_, 0.9);
        r.p99 = percentile(step_rtts_, 0.99);
        r.p999 = percentile(step_rtts_, 0.999);
        r.max = step_rtts_.empty() ? 0 : step_rtts_.back();
        double sum = 0;
        for (double v : step_rtts_) sum += v;
        r.mean = step_rtts_.empty() ? 0 : sum / static_cast<double>(step_rtts_.size());
        double const lost = r.sent > 0 ? (r.sent - r.received) / r.sent : 1;
        r.pass = r.sent > 0 && lost <= o_.max_loss && r.p99 <= o_.max_p99_ms;
        return r;
    }

    void end_step() {
        if (o_.mode == "echo")
            server_stop_at_ = clock_type::now(), server_cpu_end_ = process_cpu_seconds(o_.server_pid);
        step_result r = summarize();
        step_measured_sent_ = 0;
        if (o_.mode == "echo") {
            echo_result_ = r;
            return finish();
        }
        std::cerr << "mesa-loadgen: step " << step_ << ": rate " << r.rate << "/s sent " << r.sent << " received "
                  << r.received << " p99 " << r.p99 << " ms -> " << (r.pass ? "pass" : "fail") << "\n";
        steps_.push_back(r);
        if (r.pass) {
            best_ = std::max(best_, r.rate);
            if (!failed_rate_)
                step_rate_ *= o_.growth;
            else
                step_rate_ = (best_ + *failed_rate_) / 2;
        } else {
            failed_rate_ = failed_rate_ ? std::min(*failed_rate_, r.rate) : r.rate;
            if (best_ == 0) {
                // Even the first rate failed: go down.
                step_rate_ = r.rate / o_.growth;
                if (step_rate_ < 10) return finish();
                failed_rate_.reset();
                if (++downs_ > 8) return finish();
                return pause_then_step();
            }
            step_rate_ = (best_ + *failed_rate_) / 2;
        }
        if (failed_rate_) {
            if (refined_++ >= o_.refine) return finish();
        }
        pause_then_step();
    }

    void pause_then_step() {
        // Let the server drain what the last step left (every PING answered,
        // or 5 s) so that a failed step does not spoil the next one.
        pause_until_ = clock_type::now() + std::chrono::seconds(5);
        wait_drained();
    }

    void wait_drained() {
        tick_.expires_after(std::chrono::milliseconds(100));
        tick_.async_wait([this](asio::error_code ec) {
            if (ec) return;
            if (pongs_ >= pings_sent_ || clock_type::now() >= pause_until_) return start_step();
            wait_drained();
        });
    }

    void mark_server() {
        server_mark_at_ = clock_type::now();
        server_cpu_mark_ = process_cpu_seconds(o_.server_pid);
    }

    // ---- results ------------------------------------------------------------
    void finish() {
        if (finished_) return;
        finished_ = true;
        auto const end = clock_type::now();
        if (server_cpu_end_ < 0) {
            server_stop_at_ = end;
            server_cpu_end_ = process_cpu_seconds(o_.server_pid);
        }
        // connect: up to the last hello; fanout: up to the last delivery.
        if (o_.mode == "connect" && hellos_ > 0) server_stop_at_ = last_hello_at_;
        double const cpu = cpu_seconds() - cpu_start_;
        std::ostringstream j;
        j << "{\"mode\":\"" << o_.mode << "\",\"clients\":" << o_.clients << ",\"connected\":" << hellos_
          << ",\"connect_failures\":" << connect_failures_ << ",\"closed_after_open\":" << closed_after_open_
          << ",\"close_frames\":" << close_frames_ << ",\"invalid\":" << invalid_ << ",\"unexpected\":" << unexpected_
          << ",\"frames_in\":" << frames_in_ << ",\"bytes_in\":" << bytes_in_;
        if (all_open_) j << ",\"open_s\":" << fmt(seconds_since(start_, all_open_at_));
        if (o_.mode == "connect" && hellos_ > 0) {
            double const s = seconds_since(start_, last_hello_at_);
            j << ",\"connect_s\":" << fmt(s) << ",\"connections_per_s\":" << fmt(static_cast<double>(hellos_) / s);
        }
        if (o_.mode == "fanout") {
            j << ",\"messages\":" << o_.messages << ",\"message_bytes\":" << message_bytes_
              << ",\"redis_receivers\":" << receivers_ << ",\"expected\":" << expected_
              << ",\"deliveries\":" << deliveries_
              << ",\"lost\":" << (expected_ > deliveries_ ? expected_ - deliveries_ : 0) << ",\"gaps\":" << gaps_
              << ",\"reordered\":" << reordered_ << ",\"exact_frames\":" << exact_frames_;
            if (deliveries_ > 0) {
                double const total = seconds_since(published_at_, last_delivery_at_);
                double const spread = seconds_since(first_delivery_at_, last_delivery_at_);
                j << ",\"publish_to_first_s\":" << fmt(seconds_since(published_at_, first_delivery_at_))
                  << ",\"publish_to_last_s\":" << fmt(total) << ",\"first_to_last_s\":" << fmt(spread)
                  << ",\"deliveries_per_s\":" << fmt(total > 0 ? static_cast<double>(deliveries_) / total : 0);
            }
        }
        if (o_.mode == "echo" && echo_result_) {
            auto const& r = *echo_result_;
            j << ",\"rate\":" << fmt(r.rate) << ",\"duration_s\":" << fmt(o_.duration_s) << ",\"sent\":" << fmt(r.sent)
              << ",\"received\":" << fmt(r.received) << ",\"lost\":" << fmt(r.sent - r.received)
              << ",\"p50_ms\":" << fmt(r.p50) << ",\"p90_ms\":" << fmt(r.p90) << ",\"p99_ms\":" << fmt(r.p99)
              << ",\"p999_ms\":" << fmt(r.p999) << ",\"max_ms\":" << fmt(r.max) << ",\"mean_ms\":" << fmt(r.mean);
        }
        if (o_.mode == "echo-max") {
            j << ",\"max_sustained_rate\":" << fmt(best_) << ",\"criteria\":{\"max_p99_ms\":" << fmt(o_.max_p99_ms)
              << ",\"max_loss\":" << fmt(o_.max_loss) << ",\"step_s\":" << fmt(o_.step_s) << "},\"steps\":[";
            for (std::size_t i = 0; i < steps_.size(); ++i) {
                auto const& r = steps_[i];
                j << (i ? "," : "") << "{\"rate\":" << fmt(r.rate) << ",\"received\":" << fmt(r.received)
                  << ",\"sent\":" << fmt(r.sent) << ",\"p99_ms\":" << fmt(r.p99)
                  << ",\"pass\":" << (r.pass ? "true" : "false") << "}";
            }
            j << "]";
        }
        if (o_.mode == "soak") {
            soak_failed_ = !soak_summary(j);
            // Wall-clock time before the sockets are reset, in the gateway
            // log's format: its disconnections before this happened in the soak.
            auto const wall = std::chrono::system_clock::now();
            std::time_t const secs = std::chrono::system_clock::to_time_t(wall);
            auto const ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count() % 1000;
            std::tm utc{};
            gmtime_r(&secs, &utc);
            char stamp[40];
            std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
            std::snprintf(stamp + std::strlen(stamp), 8, ".%03dZ", static_cast<int>(ms));
            j << ",\"ended_at\":\"" << stamp << "\"";
        }
        j << ",\"elapsed_s\":" << fmt(seconds_since(start_, end)) << ",\"loadgen_cpu_s\":" << fmt(cpu)
          << ",\"loadgen_cpu_share\":" << fmt(cpu / std::max(1e-9, seconds_since(start_, end)))
          << ",\"timed_out\":" << (timed_out_ ? "true" : "false");
        if (o_.server_pid > 0 && server_cpu_mark_ >= 0 && server_cpu_end_ >= 0 && o_.mode != "idle") {
            double const server_cpu = server_cpu_end_ - server_cpu_mark_;
            double const wall = std::max(1e-9, seconds_since(server_mark_at_, server_stop_at_));
            j << ",\"server_cpu_s\":" << fmt(server_cpu) << ",\"server_cpu_share\":" << fmt(server_cpu / wall);
            if (o_.mode == "fanout" && server_cpu > 0)
                j << ",\"deliveries_per_server_cpu_s\":" << fmt(static_cast<double>(deliveries_) / server_cpu);
            if (o_.mode == "connect" && server_cpu > 0)
                j << ",\"connections_per_server_cpu_s\":" << fmt(static_cast<double>(hellos_) / server_cpu);
        }
        j << "}";
        std::cout << j.str() << std::endl;
        // Reset rather than FIN: no TIME_WAIT left behind to exhaust ports
        // across trials.
        for (auto& c : conns_) {
            asio::error_code ignored;
            if (c->socket.is_open()) {
                c->socket.set_option(asio::socket_base::linger(true, 0), ignored);
                c->socket.close(ignored);
            }
        }
        if (redis_) {
            asio::error_code ignored;
            redis_->close(ignored);
        }
        ioc_.stop();
    }

    options o_;
    asio::io_context ioc_{1};
    asio::steady_timer timeout_;
    asio::steady_timer tick_;
    asio::signal_set signals_;
    tcp::endpoint endpoint_;
    std::string request_;
    std::vector<std::unique_ptr<connection>> conns_;
    std::vector<connection*> dirty_;
    std::vector<char> read_buffer_;
    rng rng_;

    clock_type::time_point start_, all_open_at_, last_hello_at_;
    double cpu_start_ = 0;
    std::size_t next_open_ = 0, opening_ = 0, hellos_ = 0, connect_failures_ = 0, closed_after_open_ = 0;
    bool all_open_ = false, finished_ = false, timed_out_ = false, interrupted_ = false;
    std::uint64_t invalid_ = 0, unexpected_ = 0, frames_in_ = 0, bytes_in_ = 0, close_frames_ = 0, errors_ = 0;

    // fanout
    std::unique_ptr<tcp::socket> redis_;
    std::string publish_buffer_;
    std::array<char, 4096> redis_in_{};
    bool redis_line_start_ = true, redis_reading_count_ = false;
    std::size_t publish_replies_ = 0, message_bytes_ = 0;
    std::uint64_t receivers_ = 0;
    std::string expected_suffix_;
    std::uint64_t exact_frames_ = 0;
    clock_type::time_point read_time_;
    std::uint64_t complete_ = 0, expected_ = 0, deliveries_ = 0, gaps_ = 0, reordered_ = 0;
    clock_type::time_point published_at_, first_delivery_at_, last_delivery_at_;

    // echo
    std::vector<connection*> open_list_;
    std::size_t rr_ = 0;
    std::uint64_t seq_ = 0, pings_sent_ = 0, pongs_ = 0;
    std::uint64_t step_ = 0, step_sent_ = 0, step_received_ = 0, step_measured_sent_ = 0;
    double step_rate_ = 0, best_ = 0;
    std::optional<double> failed_rate_;
    int refined_ = 0, downs_ = 0;
    bool step_sending_ = false;
    clock_type::time_point step_start_, step_end_, measure_from_, drain_until_, pause_until_;
    std::vector<double> step_rtts_;
    std::optional<step_result> echo_result_;

    // the server's CPU time over the measured phase (--server-pid)
    std::unique_ptr<asio::steady_timer> server_mark_timer_;
    clock_type::time_point server_mark_at_, server_stop_at_;
    double server_cpu_mark_ = -1, server_cpu_end_ = -1;
    std::vector<step_result> steps_;

    // soak
    std::string soak_pad_, redis_out_, redis_inflight_;
    bool redis_writing_ = false, soak_draining_ = false, soak_failed_ = false, server_gone_ = false;
    std::uint64_t published_ = 0, redis_count_ = 0, unreceived_publishes_ = 0, redis_errors_ = 0;
    std::uint64_t heartbeats_ = 0, heartbeat_retries_ = 0, heartbeat_interval_ms_ = 0;
    clock_type::time_point publish_start_, publish_end_, next_report_, last_report_at_;
    double last_report_cpu_ = 0, last_report_server_cpu_ = -1, max_latency_ms_ = 0;
    std::vector<float> interval_latency_;
    std::vector<double> interval_p99s_;
    std::vector<sample> samples_;
    std::ofstream samples_out_;
    std::map<std::string, std::size_t> drop_reasons_;
};

}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    options o = parse_args(argc, argv);
    try {
        loadgen g(std::move(o));
        return g.run();
    } catch (std::exception const& e) {
        std::cerr << "mesa-loadgen: " << e.what() << "\n";
        return 1;
    }
}
