/**
 * The router: the routing graph, pathfinding and mission control (lnd's routing/ package in small).
 *
 *   ChannelGraph (graph.ts): directed edges by short_channel_id and origin, our own with their spendable balance;
 *     withRouteHints lays an invoice's hints over it for one search; applyChannelUpdate takes a BOLT 7 update.
 *   PathFinder (pathfind.ts): RouteFinder, Dijkstra from the payee back to us with lnd's weight and attempt cost;
 *     a Route in the shape the switch's sendToRoute takes, or a RouteError value.
 *   InMemoryMissionControl (mission-control.ts): MissionControl, lnd's a-priori estimator and result interpretation,
 *     at most `maxPairs` pairs remembered.
 */
export * from './interfaces.js';
export * from './graph.js';
export * from './pathfind.js';
export * from './mission-control.js';
