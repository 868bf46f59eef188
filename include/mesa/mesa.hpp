#pragma once
// The umbrella header: everything a server needs.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <mesa/broker/memory.hpp>
#include <mesa/close_code.hpp>
#include <mesa/dispatcher.hpp>
#include <mesa/feature/authentication.hpp>
#include <mesa/feature/heartbeat.hpp>
#include <mesa/feature/message_store.hpp>
#include <mesa/feature/middleware.hpp>
#include <mesa/feature/portals.hpp>
#include <mesa/feature/rate_limit.hpp>
#include <mesa/feature/reconnect.hpp>
#include <mesa/feature/sync.hpp>
#include <mesa/feature/version_rule.hpp>
#include <mesa/idempotency.hpp>
#include <mesa/instance_group.hpp>
#include <mesa/message.hpp>
#include <mesa/opcode.hpp>
#include <mesa/parse.hpp>
#include <mesa/portal.hpp>
#include <mesa/server.hpp>
#include <mesa/server_client.hpp>
#include <mesa/shutdown.hpp>
#include <mesa/transport/asio.hpp>
#include <mesa/transport/memory.hpp>
#include <mesa/transport/websocketpp.hpp>
#include <mesa/upgrade_rate_limit.hpp>
#include <mesa/version.hpp>

namespace mesa {

/// A plain ws:// server (the lean Asio transport) on the embedded broker
/// with the given features.
template <class... Features>
using basic_server = server<transport::asio_plain, broker::memory, Features...>;

}  // namespace mesa
