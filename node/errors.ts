/**
 * Typed errors of the node layer: why a peer was dropped, why a connection
 * or the node itself failed. A peer's disconnect reason is always an
 * `AmpnodeError`: one of these, a `NoiseError` (BOLT 8: bad MAC, bad act,
 * closed socket, handshake timeout) or a `DecodeError` (BOLT 1: malformed
 * message, unknown even type).
 */
import { AmpnodeError } from '../wire/errors.js';

export type PeerErrorCode =
  | 'ERR_PEER_INIT_TIMEOUT' // no init within the init timeout
  | 'ERR_PEER_FIRST_NOT_INIT' // the first message was not init
  | 'ERR_PEER_UNKNOWN_REQUIRED_FEATURE' // an even feature bit we do not know (BOLT 1)
  | 'ERR_PEER_FEATURE_DEPENDENCY' // a feature set without the features it depends on (BOLT 9)
  | 'ERR_PEER_NETWORK_MISMATCH' // the peer's init `networks` does not include our chain
  | 'ERR_PEER_PONG_TIMEOUT' // a pong did not arrive in time
  | 'ERR_PEER_PONG_SIZE' // a pong whose length is not the num_pong_bytes we asked for
  | 'ERR_PEER_REMOTE_ERROR' // the peer sent a connection-level `error`
  | 'ERR_PEER_HANDLER_FAILED' // a registered message handler threw
  | 'ERR_PEER_REPLACED' // a newer connection to the same node took over
  | 'ERR_PEER_DISCONNECT_REQUESTED' // our own user asked for the disconnect
  | 'ERR_PEER_NODE_STOPPING' // the node is shutting down
  | 'ERR_PEER_PING_FLOOD' // the peer sent pings far beyond its budget (pingsPerSecond, pongBytesPerSecond)
  | 'ERR_PEER_SEND_BUFFER_FULL'; // the peer stopped reading while we had far more than maxSendBufferBytes queued for it

export class PeerError extends AmpnodeError<PeerErrorCode> {}

export type NodeErrorCode =
  | 'ERR_NODE_KEY_INVALID' // the node_key file is unreadable or not a valid key
  | 'ERR_NODE_CONFIG' // a bad configuration value
  | 'ERR_NODE_NOT_STARTED' // an operation that needs a started node
  | 'ERR_NODE_ALREADY_STARTED'
  | 'ERR_CONNECT_FAILED' // TCP connect failed or timed out
  | 'ERR_TOO_MANY_PENDING' // an incoming connection refused: too many others still in handshake/init
  | 'ERR_TOO_MANY_PENDING_FROM_ADDRESS' // refused: its address already holds its share of those slots
  | 'ERR_TOO_MANY_PEERS' // refused after the handshake: maxPeersWithoutChannels incoming peers without channels are connected
  | 'ERR_TOO_MANY_PEERS_FROM_ADDRESS' // refused: maxPeersPerAddress peers without channels are connected from its address
  | 'ERR_TOO_MANY_CONNECTIONS' // refused (or a dial not made): maxConnections peer sockets are open (file descriptor reserve)
  | 'ERR_NOT_CONNECTED' // no such peer
  | 'ERR_EVENT_NOT_PENDING'; // eventHandled with no event waiting, or naming one that is not the head of the queue

export class NodeError extends AmpnodeError<NodeErrorCode> {}
