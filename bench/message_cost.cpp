// mesa-message-cost: the CPU time of the protocol work one echo costs our
// server outside the transport, for bench/run to set beside the bare
// server's whole cost per PONG (which flips PING to PONG in place and parses
// nothing). One thread, the loadgen's PING text:
//   parse   mesa::parse (Boost.JSON, then the message checks)
//   reply   the gateway's PONG: mesa::message("PONG", m.d), mesa::serialize
// Prints one JSON line: {"parse_ns":…,"reply_ns":…,"total_ns":…}, the
// median of 5 rounds of 200 000 each.
#include <mesa/message.hpp>
#include <mesa/parse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

template <class Work>
double median_ns(Work&& work) {
    constexpr int rounds = 5, per_round = 200000;
    std::vector<double> ns;
    for (int r = 0; r < rounds; ++r) {
        auto const start = std::chrono::steady_clock::now();
        for (int i = 0; i < per_round; ++i) work(i);
        auto const end = std::chrono::steady_clock::now();
        ns.push_back(std::chrono::duration<double, std::nano>(end - start).count() / per_round);
    }
    std::sort(ns.begin(), ns.end());
    return ns[rounds / 2];
}

}  // namespace

int main() {
    // As mesa-loadgen writes it (bench/loadgen.cpp, echo).
    std::string const ping = R"({"op":0,"d":{"seq":1234567,"ts":98765432101,"st":12},"t":"PING"})";
    std::size_t sink = 0;  // keeps the work observable
    double const parse_ns = median_ns([&](int) {
        auto r = mesa::parse(ping);
        sink += r ? r.value().d.size() : 0;
    });
    auto const parsed = mesa::parse(ping);
    if (!parsed) return 1;
    double const reply_ns = median_ns([&](int) {
        mesa::message pong("PONG", parsed.value().d);
        sink += mesa::serialize(pong).size();
    });
    std::printf("{\"parse_ns\":%.1f,\"reply_ns\":%.1f,\"total_ns\":%.1f,\"sink\":%zu}\n", parse_ns, reply_ns,
                parse_ns + reply_ns, sink);
    return 0;
}
