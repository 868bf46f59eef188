#pragma once
// A broker test double: the memory broker plus a log of every publication
// and presence change, so a test can assert what a server told the cluster.
// Swapping brokers is one template argument:
//   mesa::server<mesa::transport::memory, mesa::test::recording_broker>
#include <mesa/broker/memory.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mesa::test {

class recording_broker : public mesa::broker::memory {
public:
    struct publication {
        std::string channel;
        std::string payload;
    };
    struct presence_step {
        std::int64_t connections;  // opened (+) or closed (-)
        std::string id;
        std::int64_t sockets;  // of `id`
    };

    using mesa::broker::memory::memory;

    void publish(std::string const& channel, std::string payload, mesa::broker::completion done = {}) {
        publications.push_back({channel, payload});
        mesa::broker::memory::publish(channel, std::move(payload), std::move(done));
    }
    void presence_change(mesa::keys const& keys, std::string const& instance, std::int64_t epoch,
                         std::int64_t connections, std::string const& id, std::int64_t sockets,
                         mesa::broker::count_handler done) {
        presence_changes.push_back({connections, id, sockets});
        mesa::broker::memory::presence_change(keys, instance, epoch, connections, id, sockets, std::move(done));
    }

    std::vector<publication> publications;
    std::vector<presence_step> presence_changes;
};

}  // namespace mesa::test
