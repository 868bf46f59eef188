#pragma once
// A broker test double: the memory broker plus a log of every publication
// and set change, so a test can assert what a server told the cluster.
// Swapping brokers is one template argument:
//   mesa::server<mesa::transport::memory, mesa::test::recording_broker>
#include <mesa/broker/memory.hpp>

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
    struct set_change {
        std::string key;
        std::string member;
        bool added;
    };

    using mesa::broker::memory::memory;

    void publish(std::string const& channel, std::string payload) {
        publications.push_back({channel, payload});
        mesa::broker::memory::publish(channel, std::move(payload));
    }
    void set_add(std::string const& key, std::string const& member, mesa::broker::completion done = {}) {
        set_changes.push_back({key, member, true});
        mesa::broker::memory::set_add(key, member, std::move(done));
    }
    void set_remove(std::string const& key, std::string const& member, mesa::broker::completion done = {}) {
        set_changes.push_back({key, member, false});
        mesa::broker::memory::set_remove(key, member, std::move(done));
    }

    std::vector<publication> publications;
    std::vector<set_change> set_changes;
};

}  // namespace mesa::test
