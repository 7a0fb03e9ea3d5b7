/**
 * Gossip (BOLT 7): the public channel graph learnt from peers.
 *
 *   validate.ts   BOLT 7's receiving rules as pure functions: accept / ignore / reject (and whether to warn the peer),
 *                 with the funding output checked through `GossipChain`.
 *   graph.ts      GossipGraph: the validated graph in memory and in a key/value store, bounded and pruned; a RoutingGraph
 *                 for pathfinding, and `combineGraphs` to lay our own channels over it.
 */
export * from './validate.js';
export * from './graph.js';
