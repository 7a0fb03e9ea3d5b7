/**
 * Gossip (BOLT 7): the public channel graph learnt from peers.
 *
 *   validate.ts   BOLT 7's receiving rules as pure functions: accept / ignore / reject (and whether to warn the peer),
 *                 with the funding output checked through `GossipChain`.
 */
export * from './validate.js';
