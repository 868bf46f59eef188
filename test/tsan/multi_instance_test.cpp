// Several server instances, each on its own thread with its own io_context,
// joined by one broker::memory::hub and one instance_group (the "more cores =
// more instances" setup of DESIGN.md; the group hands sends over directly,
// the hub's copies of them must be ignored). Clients on every instance authenticate and send; each
// instance broadcasts and sends to ids connected elsewhere. Built with
// -fsanitize=thread by .ci/sanitize: any data race fails it; the delivery
// counts are checked too. Part of the unit tests as well (meson test).
#include <mesa/broker/memory.hpp>
#include <mesa/feature/authentication.hpp>
#include <mesa/feature/sync.hpp>
#include <mesa/parse.hpp>
#include <mesa/server.hpp>
#include <mesa/transport/memory.hpp>

#include <doctest/doctest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using server_type = mesa::server<mesa::transport::memory, mesa::broker::memory, mesa::authentication, mesa::sync>;

constexpr int instances = 4;
constexpr int peers_per_instance = 5;
constexpr int broadcasts_per_instance = 100;  // server.send(m) to everyone in the cluster
constexpr int targeted_per_instance = 100;    // server.send(m, {id on the next instance})
constexpr int client_messages = 20;           // each client sends; its server relays to everyone

std::atomic<int> failures{0};

void check(bool ok, std::string const& what) {
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "multi_instance_test: %s\n", what.c_str());
    }
}

std::string id_of(int instance, int peer) { return "user-" + std::to_string(instance) + "-" + std::to_string(peer); }

/// Runs `ioc` until `done()` or the deadline; false on timeout.
bool run_until(asio::io_context& ioc, std::function<bool()> const& done,
               std::chrono::seconds limit = std::chrono::seconds(60)) {
    auto const deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        ioc.run_one_for(std::chrono::milliseconds(5));
    }
    return true;
}

// A poor man's std::barrier (C++17): every instance reaches a phase before any goes on.
class phase_barrier {
public:
    explicit phase_barrier(int n) : n_(n) {}
    /// Waits for everyone, running `ioc` meanwhile (others' publications keep arriving).
    void arrive_and_wait(asio::io_context& ioc) {
        int const phase = phase_.load();
        if (++arrived_ == n_) {
            arrived_ = 0;
            ++phase_;
        }
        while (phase_.load() == phase) ioc.run_one_for(std::chrono::milliseconds(1));
    }

private:
    int const n_;
    std::atomic<int> arrived_{0};
    std::atomic<int> phase_{0};
};

// Every client gets: the hello, op 22, every instance's broadcasts, every
// client's relayed messages, and the targeted sends to it.
constexpr int expected_broadcasts = instances * broadcasts_per_instance;
constexpr int expected_relayed = instances * peers_per_instance * client_messages;

void instance(int index, std::shared_ptr<mesa::broker::memory::hub> hub, std::shared_ptr<mesa::instance_group> group,
              phase_barrier& barrier) {
    asio::io_context ioc;
    auto guard = asio::make_work_guard(ioc);
    server_type::options o;
    o.broker.cluster = hub;
    o.group = group;
    o.feature<mesa::authentication>().timeout = std::chrono::milliseconds(0);
    server_type server{ioc, o};
    server.feature<mesa::authentication>().on_authenticate(
        [](server_type::client_ptr const&, mesa::json::object const& d, mesa::authentication::done done) {
            done.succeed(std::string(d.at("id").as_string()));
        });
    server.on_message([&server](server_type::client_ptr const&, mesa::message const& m) { server.send(m); });
    server.start();

    std::vector<mesa::transport::memory::connection_ptr> peers;
    for (int p = 0; p < peers_per_instance; ++p) {
        peers.push_back(server.transport().connect("/"));
        peers.back()->send_text(R"({"op":2,"d":{"id":")" + id_of(index, p) + R"("}})");
    }
    check(run_until(ioc, [&] { return server.identified_count() == peers_per_instance; }),
          "instance " + std::to_string(index) + ": clients did not authenticate");
    // Everyone is online before anything is sent (sync would store otherwise).
    barrier.arrive_and_wait(ioc);

    int const next = (index + 1) % instances;
    for (int i = 0; i < broadcasts_per_instance; ++i)
        server.send(mesa::message("BROADCAST", {{"from", index}, {"i", i}}));
    for (int i = 0; i < targeted_per_instance; ++i)
        server.send(mesa::message("TARGETED", {{"from", index}, {"i", i}}), {id_of(next, i % peers_per_instance)});
    for (auto& peer : peers)
        for (int i = 0; i < client_messages; ++i) peer->send_text(R"({"op":0,"t":"RELAYED","d":{}})");

    auto count = [](mesa::transport::memory::connection const& peer, std::string const& type) {
        int n = 0;
        for (auto const& text : peer.received()) {
            auto parsed = mesa::parse(text);
            if (parsed && parsed.value().t == type) ++n;
        }
        return n;
    };
    int const targeted_each = instances == 1 ? 0 : targeted_per_instance / peers_per_instance;
    // Frames other than the op 1s by which sync asks for confirmations.
    auto frames = [](mesa::transport::memory::connection const& peer) {
        return static_cast<int>(std::count_if(peer.received().begin(), peer.received().end(),
                                              [](auto const& text) { return text.rfind(R"({"op":1,)", 0) != 0; }));
    };
    auto all_arrived = [&] {
        for (auto const& peer : peers)
            if (frames(*peer) < 2 + expected_broadcasts + expected_relayed + targeted_each) return false;
        return true;
    };
    check(run_until(ioc, all_arrived), "instance " + std::to_string(index) + ": not everything arrived");
    barrier.arrive_and_wait(ioc);  // nobody publishes any more
    // Late duplicates would show here.
    ioc.restart();
    ioc.poll();
    for (int p = 0; p < peers_per_instance; ++p) {
        auto const& peer = *peers[p];
        auto const who = "instance " + std::to_string(index) + " peer " + std::to_string(p);
        check(count(peer, "BROADCAST") == expected_broadcasts,
              who + ": broadcasts " + std::to_string(count(peer, "BROADCAST")));
        check(count(peer, "RELAYED") == expected_relayed, who + ": relayed " + std::to_string(count(peer, "RELAYED")));
        check(count(peer, "TARGETED") == targeted_each, who + ": targeted " + std::to_string(count(peer, "TARGETED")));
        check(frames(peer) == 2 + expected_broadcasts + expected_relayed + targeted_each,
              who + ": " + std::to_string(frames(peer)) + " frames");
    }
    std::int64_t counted = -1;
    server.broker().counter_get(server.keys().connected_clients_count(),
                                [&](std::error_code, std::int64_t n) { counted = n; });
    run_until(ioc, [&] { return counted >= 0; });
    check(counted == instances * peers_per_instance, "connected_clients_count " + std::to_string(counted));
    barrier.arrive_and_wait(ioc);  // everyone read the counter before anyone stops
    server.stop();
    ioc.restart();
    ioc.poll();
    check(server.clients().empty(), "clients left after stop");
    barrier.arrive_and_wait(ioc);  // no instance is torn down while another still posts to it
}

}  // namespace

TEST_CASE("several instances on their own threads share a hub and a group: every frame arrives once, no race") {
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    auto group = std::make_shared<mesa::instance_group>();
    phase_barrier barrier(instances);
    std::vector<std::thread> threads;
    for (int i = 0; i < instances; ++i) threads.emplace_back(instance, i, hub, group, std::ref(barrier));
    for (auto& t : threads) t.join();
    CHECK(failures == 0);  // each failure is printed above
}
