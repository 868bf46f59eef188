#pragma once
// Opcodes of the Mesa protocol (see PROTOCOL.md, "Opcodes").

namespace mesa::opcode {

inline constexpr int dispatch = 0;        // application message, both directions
inline constexpr int heartbeat = 1;       // server -> client
inline constexpr int authenticate = 2;    // client -> server
inline constexpr int internal_event = 5;  // between services only (DISCONNECT_CLIENT)
inline constexpr int hello = 10;          // server -> client, first frame
inline constexpr int heartbeat_ack = 11;  // client -> server
inline constexpr int authenticated = 22;  // server -> client

}  // namespace mesa::opcode
