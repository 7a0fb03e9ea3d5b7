/**
 * Gossip (BOLT 7): the public channel graph learnt from peers.
 *
 *   validate.ts   BOLT 7's receiving rules as pure functions: accept / ignore / reject (and whether to warn the peer),
 *                 with the funding output checked through `GossipChain`.
 *   graph.ts      GossipGraph: the validated graph in memory and in a key/value store, bounded and pruned; a RoutingGraph
 *                 for pathfinding, and `combineGraphs` to lay our own channels over it.
 *   sync.ts       syncStep: the per-peer gossip_queries state machine (lnd's way) and the answers to a peer's queries.
 *   relay.ts      RelayQueue: what we learnt, deduped, filtered and rate-limited per peer, flushed once a minute.
 *
 * The peer manager's part: on connect feed `connected` to a fresh sync state; pass each gossip message through
 * `decodeGossipMessage`, apply announcements and updates to the graph (warning the peer on a reject with
 * `warnPeer`), enqueue what is accepted for relay, and feed every message to `syncStep`; send what it returns;
 * tick the sync machines and flush the relay queue and the graph on timers.
 */
export * from './validate.js';
export * from './graph.js';
export * from './sync.js';
export * from './relay.js';
